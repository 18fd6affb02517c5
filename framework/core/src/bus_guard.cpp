#include <prefork/core/bus_guard.hpp>

#include <setjmp.h>
#include <signal.h>

#include <cerrno>
#include <cstdint>
#include <mutex>

#include <prefork/log.hpp>

namespace prefork {

namespace {

struct Guard {
  sigjmp_buf* jump;
  std::uintptr_t begin, end;
};

// Set by this thread only, read by its own signal handler: the TLS is in
// place before any guarded access can fault.
thread_local const Guard* current = nullptr;
struct sigaction previous {};
std::mutex installing;

void on_bus(int, siginfo_t* info, void*) {
  const Guard* guard = current;
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  // si_code > 0: raised by the kernel for this access, not sent by kill().
  if (guard != nullptr && info->si_code > 0 && address >= guard->begin && address < guard->end)
    siglongjmp(*guard->jump, 1);
  // Not ours: as if this handler were not there. A fault returns to its
  // instruction and faults again into the previous action; a signal that
  // was sent is sent again.
  ::sigaction(SIGBUS, &previous, nullptr);
  if (info->si_code <= 0) ::raise(SIGBUS);
}

bool installed() {
  struct sigaction now {};
  return ::sigaction(SIGBUS, nullptr, &now) == 0 && (now.sa_flags & SA_SIGINFO) != 0 &&
         now.sa_sigaction == on_bus;
}

// Checked on every guard, not once: whoever set SIGBUS's action since
// (a library, a test framework) keeps it for the faults that are not ours.
void install() {
  if (installed()) return;
  std::lock_guard lock(installing);
  if (installed()) return;
  struct sigaction action {};
  action.sa_sigaction = on_bus;
  action.sa_flags = SA_SIGINFO;
  ::sigemptyset(&action.sa_mask);
  if (::sigaction(SIGBUS, &action, &previous) != 0) log_sys_error("sigaction", errno, "SIGBUS");
}

}  // namespace

bool run_guarded(const void* begin, std::size_t size, void (*body)(void*), void* context) {
  install();
  sigjmp_buf jump;
  const auto from = reinterpret_cast<std::uintptr_t>(begin);
  const Guard guard{&jump, from, from + size};
  const Guard* const outer = current;
  // The saved mask is restored by the jump: SIGBUS is blocked in its handler.
  if (sigsetjmp(jump, 1) != 0) {
    current = outer;
    return false;
  }
  current = &guard;
  try {
    body(context);
  } catch (...) {
    current = outer;
    throw;
  }
  current = outer;
  return true;
}

}  // namespace prefork
