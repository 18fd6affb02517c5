// Boost.Process v2 as an application would use it: a process object built by
// the default launcher, then wait(). Header-only (BOOST_PROCESS_V2_HEADER_ONLY).
//
// What the default launcher does per child, on Linux with Boost 1.81: a pipe
// for the child's exec error, fork() (not vfork: the page tables are copied),
// io_context fork notifications, close_range() over the descriptors not
// whitelisted, execve(); the parent blocks reading the pipe until the exec
// closes it, then opens a pidfd for the child.
#include "boost_launch.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/process/v2.hpp>
#include <optional>
#include <stdexcept>

namespace spawn_cost {

namespace bp = boost::process::v2;

namespace {

// bind_fd is broken in 1.81 (its on_setup returns nothing), so keep the
// stamp pipe open by the launcher's documented hook: the whitelist.
struct KeepOpen {
  int fd;
  bp::error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&,
                          const char* const*) {
    if (fd >= 0) launcher.fd_whitelist.push_back(fd);
    return {};
  }
};

}  // namespace

struct BoostLauncher::Impl {
  boost::asio::io_context context;
  std::optional<bp::process> child;
};

BoostLauncher::BoostLauncher() : impl_(std::make_unique<Impl>()) {}

// A process object still holding a child would SIGKILL and reap it here.
BoostLauncher::~BoostLauncher() = default;

void BoostLauncher::start(const std::string& path, const std::vector<std::string>& args,
                          int keep_fd) {
  if (impl_->child) throw std::logic_error("BoostLauncher::start: the last child is not reaped");
  try {
    impl_->child.emplace(impl_->context, path, args, KeepOpen{keep_fd});
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("boost::process::v2::process ") + path + ": " + e.what());
  }
}

int BoostLauncher::wait() {
  if (!impl_->child) throw std::logic_error("BoostLauncher::wait: no child");
  bp::error_code error;
  int code = impl_->child->wait(error);  // waitpid(); the destructor then finds it reaped
  impl_->child.reset();
  if (error) throw std::runtime_error("boost::process::v2::process::wait: " + error.message());
  return code;
}

}  // namespace spawn_cost
