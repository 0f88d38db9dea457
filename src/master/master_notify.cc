// -m notify: each worker gets its own NOTIFY_SOCKET (systemd's protocol), and what arrives
// there is the worker's readiness (READY=1), its words for `status` (STATUS=) and its notice
// that it is leaving (STOPPING=1), and its wish to be recycled (RECYCLE=1). A datagram counts only when its sender (SCM_CREDENTIALS)
// is the worker or one of its descendants, as for worker:ack.
#include <unistd.h>

#include "core/notify_message.h"
#include "master/logging.h"
#include "master/master.h"
#include "sys/notify.h"
#include "sys/peer.h"

namespace einhorn::master {

struct Master::NotifyChannel {
  uv_poll_t poll{};
  Master* master = nullptr;
  pid_t worker = 0;
  int fd = -1;
};

int Master::NotifyFd(const NotifyChannel* channel) { return channel->fd; }

void Master::WatchNotify(pid_t worker, int fd) {
  auto* ch = new NotifyChannel;
  ch->master = this;
  ch->worker = worker;
  ch->fd = fd;
  ch->poll.data = ch;
  if (uv_poll_init(&loop_, &ch->poll, fd) != 0) {
    spdlog::error("cannot watch the NOTIFY_SOCKET of worker {}", worker);
    close(fd);
    delete ch;
    return;
  }
  uv_poll_start(&ch->poll, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* channel = static_cast<NotifyChannel*>(h->data);
    try {
      channel->master->ReadNotify(channel);
      channel->master->AfterEvent();
    } catch (const std::exception& e) {
      spdlog::error("internal error reading a NOTIFY_SOCKET: {}", e.what());
    }
  });
  notify_channels_[worker] = ch;
}

void Master::DropNotify(pid_t worker) {
  const auto it = notify_channels_.find(worker);
  if (it == notify_channels_.end()) return;
  NotifyChannel* ch = it->second;
  notify_channels_.erase(it);
  uv_poll_stop(&ch->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&ch->poll), [](uv_handle_t* h) {
    auto* channel = static_cast<NotifyChannel*>(h->data);
    close(channel->fd);
    delete channel;
  });
}

void Master::ReadNotify(NotifyChannel* ch) {
  const pid_t worker = ch->worker;
  // Bounded per wakeup, so a worker flooding its socket cannot starve the loop.
  for (int budget = 64; budget > 0; --budget) {
    const auto d = sys::ReadNotifyDatagram(ch->fd);
    if (!d) return;
    bool theirs = d->sender == worker;
    if (!theirs && d->sender > 0) {
      for (const pid_t p : sys::Lineage(d->sender)) theirs = theirs || p == worker;
    }
    if (!theirs) {
      NoteNotifyStranger(worker, d->sender, d->uid);
      continue;
    }
    const core::NotifyMessage m = core::ParseNotifyMessage(d->bytes);
    if (m.status) supervisor_.WorkerStatusText(worker, *m.status);
    if (m.watchdog) supervisor_.WorkerWatchdog(worker, Now());
    if (m.ready && setup_.options.ack_mode.kind == core::AckMode::Kind::kNotify) {
      const core::AckResult r = supervisor_.Ack(worker, Now());
      if (r != core::AckResult::kAcked && r != core::AckResult::kAlreadyAcked) {
        spdlog::debug("READY=1 from worker {} not taken (it is draining or gone)", worker);
      }
    }
    // After READY=1: a worker may say both in one datagram. The supervisor logs what it does.
    if (m.recycle) supervisor_.Recycle(worker, core::RecycleCause::kWorker, Now());
    if (m.stopping) supervisor_.WorkerStopping(worker, Now());
  }
}

void Master::NoteNotifyStranger(pid_t worker, pid_t sender, uid_t uid) {
  const core::LogLimiter::Verdict v = notify_strangers_.Note(Now());
  if (v.ended && v.ended->unlogged > 0) {
    spdlog::warn("NOTIFY_SOCKET: ignored {} messages in all from processes that were not the "
                 "worker or its descendants in that run",
                 v.ended->count);
  }
  if (v.log) {
    spdlog::warn("NOTIFY_SOCKET of worker {}: ignoring a message from pid {} uid {}, which is "
                 "not that worker or one of its descendants{}",
                 worker, sender, uid,
                 v.count == 1 ? std::string()
                              : " (" + std::to_string(v.count) +
                                    " ignored in this run; a sum follows when they stop)");
  }
  ArmNotifySummary();
}

void Master::ArmNotifySummary() {
  const std::optional<core::Time> at = notify_strangers_.settle_at();
  if (!at) {
    uv_timer_stop(&notify_summary_);
    return;
  }
  const core::Duration wait = *at - Now();
  const auto ms = wait.count() <= 0 ? 1 : (wait.count() + 999'999) / 1'000'000;
  uv_timer_start(
      &notify_summary_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Master*>(t->data);
        try {
          if (const auto s = self->notify_strangers_.Settle(self->Now()); s && s->unlogged > 0) {
            spdlog::warn("NOTIFY_SOCKET: ignored {} messages in all over {:.3f}s from "
                         "processes that were not the worker or its descendants; {} of them "
                         "not logged one by one",
                         s->count, core::ToSeconds(s->lasted), s->unlogged);
          }
          self->ArmNotifySummary();
        } catch (const std::exception& e) {
          spdlog::error("internal error summing up NOTIFY_SOCKET messages: {}", e.what());
        }
      },
      static_cast<std::uint64_t>(ms), 0);
}

}  // namespace einhorn::master
