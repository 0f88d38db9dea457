# Reads `state` replies (the YAML text of Einhorn's {:state => State}) the two ways Einhorn's
# users do, and compares their shapes: einhorn_state_test.cc runs it on the replies of Ruby
# Einhorn 1.1.1 and einhorn-cpp.
#
#   ruby state_shape.rb check FILE NUMBER     # loads FILE both ways; checks the children and
#                                             # [:state][:config][:number] == NUMBER
#   ruby state_shape.rb compare REFERENCE FILE  # the same keys, with values of the same classes
#
# Exit 0 when it holds; otherwise one line per difference on stdout and exit 1.
require "yaml"
require "set"
require "time"

def load_both(path)
  text = File.read(path)
  unsafe = YAML.respond_to?(:unsafe_load) ? YAML.unsafe_load(text) : YAML.load(text)
  # As Einhorn 1.1.1's Einhorn::SafeYAML.load.
  safe = YAML.safe_load(text, permitted_classes: [Set, Symbol, Time], aliases: true)
  raise "unsafe_load and safe_load disagree" unless unsafe == safe
  safe
end

# Integer and Float are both numbers (Einhorn writes `:seconds: 1` and `-s 2` as 2.0); nil
# stands for "not set", which may be any type once set.
def kind(v)
  case v
  when Integer, Float then "Numeric"
  when true, false then "Boolean"
  when nil then "nil"
  else v.class.name
  end
end

# Keys Einhorn writes only when a flag sets them.
OPTIONAL = [%i[state config max_unacked], %i[state config max_upgrade_additional],
            %i[state config gc_before_fork]].freeze

def compare(ref, got, path, out)
  if ref.is_a?(Hash) && got.is_a?(Hash)
    (ref.keys | got.keys).each do |k|
      next if k.is_a?(Integer) # children: pids differ; each is compared below
      p = path + [k]
      if !ref.key?(k)
        out << "#{p.inspect}: not in the reference" unless OPTIONAL.include?(p)
      elsif !got.key?(k)
        out << "#{p.inspect}: missing" unless OPTIONAL.include?(p)
      else
        compare(ref[k], got[k], p, out)
      end
    end
    if path == %i[state children]
      rc = ref.values.first
      got.each { |pid, c| compare(rc, c, path + [pid], out) } if rc
    end
  elsif ref.is_a?(Array) && got.is_a?(Array)
    if ref.first && got.first
      compare(ref.first, got.first, path + [0], out)
    end
  elsif kind(ref) != kind(got) && kind(ref) != "nil" && kind(got) != "nil"
    out << "#{path.inspect}: #{kind(ref)} in the reference, #{kind(got)} here"
  end
end

def check(state, number, out)
  s = state[:state] or return out << "no :state key"
  children = s[:children]
  out << ":children is not a Hash" unless children.is_a?(Hash)
  (children || {}).each do |pid, c|
    out << "child key #{pid.inspect} is not an Integer pid" unless pid.is_a?(Integer)
    out << "child #{pid}: :type is #{c[:type].inspect}" unless c[:type] == :worker
    out << "child #{pid}: :signaled is not a Set" unless c[:signaled].is_a?(Set)
    out << "child #{pid}: :spinup_time is not a Time" unless c[:spinup_time].is_a?(Time)
    out << "child #{pid}: :acked is not a boolean" unless [true, false].include?(c[:acked])
    out << "child #{pid}: :index is not an Integer" unless c[:index].is_a?(Integer)
  end
  got = s.dig(:config, :number)
  out << "[:state][:config][:number] is #{got.inspect}, not #{number}" unless got == number
end

out = []
case ARGV[0]
when "check"
  check(load_both(ARGV[1]), Integer(ARGV[2]), out)
when "compare"
  compare(load_both(ARGV[1]), load_both(ARGV[2]), [], out)
else
  abort "usage: state_shape.rb check FILE NUMBER | compare REFERENCE FILE"
end
puts out
exit(out.empty? ? 0 : 1)
