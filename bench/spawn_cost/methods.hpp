// The ways to create a child and the two timings taken for each:
//   reap   from the call until the child has been reaped (waitpid, or
//          pthread_join), the child doing nothing at all;
//   start  from the call until the child runs: its first act is to read
//          CLOCK_MONOTONIC and send the stamp through a pipe (an exec'd child
//          does it first thing in main()), so the parent's own wake-up is not
//          counted.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prefork/unique_fd.hpp>

#include "boost_launch.hpp"

namespace spawn_cost {

enum class Method { fork, fork_exec, vfork_exec, posix_spawn, boost_process, pthread };
inline constexpr std::array all_methods{Method::fork,          Method::fork_exec,
                                        Method::vfork_exec,    Method::posix_spawn,
                                        Method::boost_process, Method::pthread};
std::string_view method_name(Method method) noexcept;
std::optional<Method> parse_method(std::string_view name) noexcept;
bool method_execs(Method method) noexcept;

// The program the exec methods run.
struct ExecTarget {
  std::string path;
  std::string kind;  // "static helper", "this binary --child-exit", "program"
  bool stamps;       // takes a descriptor number as its last argument and writes its stamp there
  std::vector<std::string> args;  // argv[1...] before that descriptor number
};
// "helper": spawn-cost-child next to this binary; "self": this binary with
// --child-exit; anything else: a path, run without arguments (no start timing).
ExecTarget exec_target(std::string_view choice);

// Runs one child at a time; not thread-safe. Owns the stamp pipe.
class ChildRunner {
 public:
  explicit ChildRunner(ExecTarget target);

  const ExecTarget& target() const noexcept { return target_; }
  // Whether `start` timing exists for this method with this target.
  bool can_time_start(Method method) const noexcept;

  std::int64_t time_reap(Method method);   // ns
  std::int64_t time_start(Method method);  // ns; the child is reaped, untimed

 private:
  pid_t launch(Method method, bool stamp);
  void reap(pid_t pid, Method method);
  std::int64_t read_stamp(Method method);

  ExecTarget target_;
  prefork::UniqueFd stamp_read_;
  prefork::UniqueFd stamp_write_;  // not close-on-exec: exec'd children write to it
  std::vector<std::string> stamp_args_;
  std::vector<const char*> argv_plain_, argv_stamp_;
  BoostLauncher boost_;
};

// Anonymous private memory with every page written, so the parent's resident
// size (and its page tables) grow by `bytes`. Huge pages are refused unless
// asked for: with them 1 GiB is 512 page-table entries, not 262144.
class TouchedRegion {
 public:
  TouchedRegion(std::size_t bytes, bool huge_pages);
  TouchedRegion(const TouchedRegion&) = delete;
  TouchedRegion& operator=(const TouchedRegion&) = delete;
  ~TouchedRegion();

 private:
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
};

// This process's resident set, from /proc/self/statm.
std::uint64_t resident_bytes();

}  // namespace spawn_cost
