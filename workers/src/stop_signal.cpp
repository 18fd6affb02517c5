#include "stop_signal.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include <prefork/error.hpp>
#include <prefork/log.hpp>
#include <prefork/unique_fd.hpp>

namespace prefork {

namespace {
// Atomics, not volatile sig_atomic_t: the handler runs on whichever thread
// takes the signal, and the pool threads read the flags (volatile orders
// nothing between threads: a data race). Lock-free atomics are safe in a
// signal handler.
std::atomic<int> stop_wake_fd{-1};
std::atomic<int> fast_wake_fd{-1};
std::atomic<int> reopen_wake_fd{-1};
std::atomic<bool> stop_requested{false};
std::atomic<bool> fast_requested{false};
std::atomic<bool> reopen_requested{false};
std::atomic<int> stop_signal_number{0};  // the first TERM, INT or QUIT
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);
constexpr int handled_signals[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1};

void wake(int fd) noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t ignored = ::write(fd, &one, sizeof one);
}

extern "C" void on_worker_signal(int number) {
  int saved = errno;
  if (number == SIGUSR1) {
    reopen_requested.store(true);
    wake(reopen_wake_fd.load());
  } else {
    // The fast flag first: whoever the stop eventfd wakes must see it.
    int none = 0;
    stop_signal_number.compare_exchange_strong(none, number);
    if (number != SIGTERM) {
      fast_requested.store(true);
      wake(fast_wake_fd.load());
    }
    stop_requested.store(true);
    wake(stop_wake_fd.load());
  }
  errno = saved;
}

UniqueFd make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw SystemError("eventfd", errno);
  return fd;
}
}  // namespace

StopSignal::StopSignal()
    : fd_(make_eventfd()), fast_fd_(make_eventfd()), reopen_fd_(make_eventfd()) {
  stop_wake_fd.store(fd_.get());
  fast_wake_fd.store(fast_fd_.get());
  reopen_wake_fd.store(reopen_fd_.get());
  struct sigaction action {};
  action.sa_handler = on_worker_signal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: interrupt a blocking accept()
  sigset_t set;
  ::sigemptyset(&set);
  for (int number : handled_signals) {
    if (::sigaction(number, &action, nullptr) != 0) {
      const int error = errno;
      throw SystemError("sigaction", error, ::strsignal(number));
    }
    ::sigaddset(&set, number);
  }
  // A spawned worker inherits its master's mask, which may hold them.
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

// The members close the descriptors after this: no handler writes to them
// by then.
StopSignal::~StopSignal() {
  for (int number : handled_signals) ::signal(number, number == SIGUSR1 ? SIG_IGN : SIG_DFL);
  stop_wake_fd.store(-1);
  fast_wake_fd.store(-1);
  reopen_wake_fd.store(-1);
}

bool StopSignal::requested() const noexcept { return stop_requested.load(); }

bool StopSignal::fast() noexcept { return fast_requested.load(); }

int StopSignal::signal_number() noexcept { return stop_signal_number.load(); }

void StopSignal::request() noexcept {
  stop_requested.store(true);
  wake(stop_wake_fd.load());
}

void StopSignal::reopen_log_if_asked() {
  if (reopen_requested.load(std::memory_order_relaxed) && reopen_requested.exchange(false))
    reopen_log();
}

void StopSignal::on_reopen_readable(int fd) {
  // Emptied first, whatever the flag says: a wake-up written after the
  // flag was taken would otherwise keep poll() returning.
  std::uint64_t count = 0;
  [[maybe_unused]] ssize_t ignored = ::read(fd, &count, sizeof count);
  reopen_log_if_asked();
}

std::array<int, 2> StopSignal::become_connection_child() noexcept {
  ::signal(SIGUSR1, SIG_IGN);
  reopen_wake_fd.store(-1);
  std::array<int, 2> own{-1, -1};
  try {
    UniqueFd stop = make_eventfd(), fast = make_eventfd();
    own = {stop.release(), fast.release()};
  } catch (const SystemError& e) {
    log_info("%s (a connection child)", e.what());
  }
  stop_wake_fd.store(own[0]);
  fast_wake_fd.store(own[1]);
  return own;
}

std::span<const int> StopSignal::held_signals() noexcept {
  // handled_signals, and SIGCHLD (a fork-per-connection worker's children).
  static constexpr int held[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGCHLD};
  return held;
}

}  // namespace prefork
