// The Boost.Process v2 method, behind a small interface: <boost/process/v2.hpp>
// takes seconds to compile, so only boost_launch.cpp includes it.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace spawn_cost {

class BoostLauncher {
 public:
  BoostLauncher();
  BoostLauncher(const BoostLauncher&) = delete;
  BoostLauncher& operator=(const BoostLauncher&) = delete;
  ~BoostLauncher();

  // Starts `path` with `args` (argv[0] excluded) through a
  // boost::process::v2::process; `keep_fd` (or -1) stays open across the exec.
  // Throws with Boost's message when the launch fails.
  void start(const std::string& path, const std::vector<std::string>& args, int keep_fd);

  // Reaps the child start() made (process::wait) and returns its exit code.
  int wait();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spawn_cost
