// The one way the master touches a file it keeps by path: the pidfile (-e), the lockfile (-f),
// the command socket (-d), UNIX -b listeners and a UNIX --metrics-listen. Their defaults live
// in $TMPDIR, which every local user can write, and the master usually runs as root, so each
// operation here keeps to these rules:
//  - The parent directory is opened once (O_PATH) and every step after that is relative to it:
//    no directory can be swapped between a check and the use.
//  - A symbolic link as the last component is never followed, replaced or removed: it is
//    refused (the master did not create it).
//  - In a directory that every user can write (S_IWOTH, like /tmp), an existing entry that is
//    neither root's nor the master's own (effective uid) is refused, and so is a regular file
//    with other hard links (a link to someone else's file).
//  - Opens are non-blocking (a FIFO cannot hang the master) and no-follow; what was opened is
//    checked again with fstat, which is what counts.
//  - A file the master created is later changed or removed only while the path still names the
//    same inode (device and inode recorded at creation), and a mode is then set through an
//    O_PATH descriptor of that inode, never by path.
// A refusal is one line that names the file and says why.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

#include "core/status.h"
#include "sys/posix.h"

namespace einhorn::sys {

// The directory a path lives in, opened O_PATH, and the path's last component.
struct ParentDir {
  UniqueFd fd;
  std::string path;     // the directory, for messages ("." for a bare name)
  std::string name;     // the last component
  bool shared = false;  // users other than root and us may create and rename entries in it
};

// Opens the parent of `path` (the directory components are resolved as usual). The error is
// strerror(errno) alone, for the caller to frame ("cannot write pidfile X: ...").
core::Result<ParentDir> OpenParent(const std::string& path);

// lstat of the entry, relative to the directory: nullopt when there is none. The error is
// strerror(errno) alone.
core::Result<std::optional<struct stat>> StatEntry(const ParentDir& dir);

// THE check: may the master use this existing entry (found by StatEntry, or fstat of what it
// opened)? Refuses a symbolic link anywhere, and in a shared directory an entry that neither
// root nor the effective uid owns, or a regular file with more than one link. `what` names
// the file in the message: "pidfile /tmp/einhorn.pid".
core::Status CheckEntry(const ParentDir& dir, const struct stat& st, const std::string& what);

// Opens `dir`'s entry with `flags` (O_CREAT with `mode` allowed; O_NOFOLLOW, O_NONBLOCK,
// O_NOCTTY and O_CLOEXEC are added) and checks it with CheckEntry, before (for a message that
// says why) and after opening (fstat: what counts). System errors read
// "cannot VERB WHAT: strerror". `opened` receives the fstat of the opened file.
core::Result<UniqueFd> OpenEntry(const ParentDir& dir, int flags, mode_t mode,
                               const std::string& what, struct stat* opened = nullptr,
                               const std::string& verb = "open");

// Writes `contents` to a new file in `dir` (a random name created O_EXCL|O_NOFOLLOW, mode
// `mode` whatever the umask), then renames it over the entry. The caller checked the entry.
// The error is strerror(errno) alone; no temp file is left behind.
core::Status ReplaceEntry(const ParentDir& dir, const std::string& contents, mode_t mode);

// Whether `path` still names the inode (dev, ino), without following a last-component link.
bool StillSameEntry(const std::string& path, dev_t dev, ino_t ino);

// Removes `path` only if it still names the inode (dev, ino). Errors are ignored: this is
// cleanup, and a path that changed is no longer ours.
void RemoveIfSame(const std::string& path, dev_t dev, ino_t ino);

// Sets the mode of the inode (dev, ino) that `path` names, through an O_PATH|O_NOFOLLOW
// descriptor checked with fstat (a link, or another file put there since, is refused).
core::Status ChmodIfSame(const std::string& path, dev_t dev, ino_t ino, mode_t mode);

}  // namespace einhorn::sys
