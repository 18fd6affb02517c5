// run_guarded (framework/core): a SIGBUS from a mapping cut under a guarded
// access is survived; every other SIGBUS keeps its default action. Each case
// runs in a child whose SIGBUS starts at its default, as in a server.
#define BOOST_TEST_MODULE bus_guard
#include <boost/test/unit_test.hpp>

#include <prefork/core/bus_guard.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

using prefork::run_guarded;

namespace {

const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));

// Two pages of a memfd, mapped shared: the scoreboard's case in small.
struct Cut {
  int fd = ::memfd_create("bus_guard_test", MFD_CLOEXEC);
  char* base = nullptr;
  Cut() {
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(2 * page)) != 0) std::_Exit(90);
    base = static_cast<char*>(::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (base == MAP_FAILED) std::_Exit(91);
  }
  void cut() {
    if (::ftruncate(fd, 0) != 0) std::_Exit(92);
  }
  int read(std::size_t at) const { return std::atomic_ref<char>(base[at]).load(); }
};

// Runs `child` in a child process with SIGBUS at its default; its status.
template <class Child>
int in_child(Child child) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGBUS, SIG_DFL);
    child();
    std::_Exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  return status;
}

bool died_of_sigbus(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS; }

}  // namespace

BOOST_AUTO_TEST_CASE(a_guarded_access_to_a_cut_mapping_returns_false_every_time) {
  const int status = in_child([] {
    Cut m;
    int seen = 0;
    if (!run_guarded(m.base, 2 * page, [&] { seen = m.read(page); })) std::_Exit(10);
    m.cut();
    // Twice: the jump must leave SIGBUS unblocked for the next one.
    for (int i = 0; i < 2; ++i)
      if (run_guarded(m.base, 2 * page, [&] { seen += m.read(page); })) std::_Exit(11);
    // Stores fault as loads do (the master's writes).
    if (run_guarded(m.base, 2 * page, [&] { m.base[0] = 1; })) std::_Exit(12);
  });
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
}

BOOST_AUTO_TEST_CASE(an_unguarded_access_still_dies_of_sigbus) {
  const int status = in_child([] {
    Cut m;
    run_guarded(m.base, 2 * page, [&] { (void)m.read(0); });  // installs the handler
    m.cut();
    (void)m.read(0);
    std::_Exit(20);
  });
  BOOST_TEST(died_of_sigbus(status));
}

BOOST_AUTO_TEST_CASE(a_fault_outside_the_guarded_range_still_dies_of_sigbus) {
  const int status = in_child([] {
    Cut guarded, other;
    other.cut();
    run_guarded(guarded.base, 2 * page, [&] { (void)other.read(0); });
    std::_Exit(30);
  });
  BOOST_TEST(died_of_sigbus(status));
}

BOOST_AUTO_TEST_CASE(a_sigbus_sent_by_kill_still_kills) {
  const int status = in_child([] {
    Cut m;
    run_guarded(m.base, 2 * page, [&] { ::kill(::getpid(), SIGBUS); });
    std::_Exit(40);
  });
  BOOST_TEST(died_of_sigbus(status));
}
