#include "stop_signal.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include <prefork/error.hpp>

namespace prefork {

namespace {
// Atomics, not volatile sig_atomic_t: the handler runs on whichever thread
// takes the signal, and the pool threads read the flag (volatile orders
// nothing between threads: a data race). Lock-free atomics are safe in a
// signal handler.
std::atomic<int> stop_fd{-1};
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);
constexpr int stop_signals[] = {SIGTERM, SIGINT, SIGQUIT};

extern "C" void on_stop_signal(int) {
  int saved = errno;
  stop_requested.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t ignored = ::write(stop_fd.load(), &one, sizeof one);
  errno = saved;
}
}  // namespace

StopSignal::StopSignal() {
  fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd_ < 0) throw SystemError("eventfd", errno);
  stop_fd.store(fd_);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: interrupt a blocking accept()
  for (int number : stop_signals)
    if (::sigaction(number, &action, nullptr) != 0) throw SystemError("sigaction", errno);
  ::signal(SIGPIPE, SIG_IGN);
}

StopSignal::~StopSignal() {
  for (int number : stop_signals) ::signal(number, SIG_DFL);
  stop_fd.store(-1);
  ::close(fd_);
}

bool StopSignal::requested() const noexcept { return stop_requested.load(); }

void StopSignal::request() noexcept { on_stop_signal(0); }

void StopSignal::block(sigset_t& set, sigset_t& previous) noexcept {
  ::sigemptyset(&set);
  for (int number : stop_signals) ::sigaddset(&set, number);
  ::sigaddset(&set, SIGCHLD);
  ::pthread_sigmask(SIG_BLOCK, &set, &previous);
}

}  // namespace prefork
