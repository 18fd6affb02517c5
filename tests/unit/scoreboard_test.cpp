#define BOOST_TEST_MODULE scoreboard
#include <boost/test/unit_test.hpp>

#include <prefork/core/scoreboard_segment.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ostream>

namespace prefork {
std::ostream& operator<<(std::ostream& out, WorkerState state) {
  return out << worker_state_name(state);
}
}  // namespace prefork

namespace bip = boost::interprocess;
using namespace prefork;
using namespace std::chrono_literals;

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

// Per-pid names, so parallel test runs never collide; the guard removes the
// segment however the test ends (forked children _exit and never run it).
struct ShmName {
  std::string name;
  explicit ShmName(const std::string& suffix = "") {
    static int counter = 0;
    name = "prefork_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter) + suffix;
  }
  ~ShmName() { bip::shared_memory_object::remove(name.c_str()); }
};

bool shm_exists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

// A segment written directly with Boost.Interprocess, to play a foreign or
// stale one.
struct FakeHeader {
  std::uint64_t magic = scoreboard_magic;
  std::uint32_t version = scoreboard_version;
  std::uint32_t slot_count = 2;
  std::uint64_t segment_size = sizeof(Header) + 2 * sizeof(Slot);
  pid_t master_pid = 0;
};

void write_fake_segment(const std::string& name, const FakeHeader& fake, std::size_t size) {
  bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write);
  shm.truncate(static_cast<bip::offset_t>(size));
  bip::mapped_region region(shm, bip::read_write);
  if (size < sizeof(Header)) {
    std::memset(region.get_address(), 0xab, size);
    return;
  }
  auto* h = new (region.get_address()) Header;
  h->magic = fake.magic;
  h->version = fake.version;
  h->slot_count = fake.slot_count;
  h->segment_size = fake.segment_size;
  h->master_pid = fake.master_pid;
}

void write_fake_segment(const std::string& name, const FakeHeader& fake) {
  write_fake_segment(name, fake, fake.segment_size);
}

pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string reader_error(const std::string& name) {
  try {
    ScoreboardReader::open(name);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

// In a forked child: a SIGSEGV ends it, rather than Boost.Test's handler
// turning it into a failure and running the rest of the module there.
void die_on_segv() {
  ::signal(SIGSEGV, SIG_DFL);
  ::signal(SIGBUS, SIG_DFL);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(create_open_and_remove) {
  ShmName shm;
  {
    Scoreboard board = Scoreboard::create(shm.name, 3);
    BOOST_TEST(shm_exists(shm.name));
    BOOST_TEST(board.name() == shm.name);
    BOOST_TEST(board.slot_count() == 3u);
    const Header& h = board.header();
    BOOST_TEST(h.magic == scoreboard_magic);
    BOOST_TEST(h.version == scoreboard_version);
    BOOST_TEST(h.slot_count == 3u);
    BOOST_TEST(h.segment_size == sizeof(Header) + 3 * sizeof(Slot));
    BOOST_TEST(h.master_pid == ::getpid());

    Scoreboard moved = std::move(board);  // the moved-from object must not remove it
    board = std::move(moved);
    ScoreboardSnapshot snap = ScoreboardReader::open(shm.name).snapshot();
    BOOST_TEST(snap.master_pid == ::getpid());
    BOOST_TEST(snap.slots.size() == 3u);
    BOOST_TEST(snap.slots[2].slot == 2u);
    BOOST_TEST(snap.totals.requests == 0u);
    BOOST_TEST(shm_exists(shm.name));
  }
  BOOST_TEST(!shm_exists(shm.name));
}

BOOST_AUTO_TEST_CASE(segment_mode_is_0600) {
  ShmName shm;
  const mode_t old_umask = ::umask(0);  // the mode must not depend on the umask
  Scoreboard board = Scoreboard::create(shm.name, 1);
  ::umask(old_umask);
  struct stat st {};
  BOOST_REQUIRE(::stat(("/dev/shm/" + shm.name).c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0600u);
  BOOST_TEST(st.st_uid == ::getuid());
}

BOOST_AUTO_TEST_CASE(totals_are_retired_plus_live_slots) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 3);
  board.header().retired.requests = 100;
  board.header().retired.errors = 1;
  board.slot(0).counters.requests = 5;
  board.slot(2).counters.requests = 7;
  board.slot(2).counters.bytes_out = 4096;
  board.slot(1).counters.connections_total = 3;
  ScoreboardSnapshot snap = ScoreboardReader::open(shm.name).snapshot();
  BOOST_TEST(snap.totals.requests == 112u);
  BOOST_TEST(snap.totals.errors == 1u);
  BOOST_TEST(snap.totals.bytes_out == 4096u);
  BOOST_TEST(snap.totals.connections_total == 3u);
  BOOST_TEST(snap.slots[2].counters.requests == 7u);
}

BOOST_AUTO_TEST_CASE(latencies_are_copied_unless_skipped) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  board.slot(1).latency.record(1500);
  board.slot(1).latency.record(2500);
  board.header().retired_latency.record(100);
  board.slot(1).counters.requests = 2;
  ScoreboardReader reader = ScoreboardReader::open(shm.name);
  const ScoreboardSnapshot full = reader.snapshot();
  BOOST_TEST(full.slots[1].latency->count() == 2u);
  BOOST_TEST(full.slots[1].latency->max() == 2500u);
  BOOST_TEST(full.slots[0].latency->count() == 0u);
  BOOST_TEST(full.retired_latency->count() == 1u);
  BOOST_TEST(full.latency->count() == 3u);
  BOOST_TEST(full.latency->min() == 100u);
  const ScoreboardSnapshot quick = reader.snapshot(ScoreboardReader::Latencies::skipped);
  BOOST_TEST(quick.slots[1].counters.requests == 2u);
  BOOST_TEST(quick.slots[1].latency->count() == 0u);
  BOOST_TEST(quick.latency->count() == 0u);
  // The full snapshot taken before is still whole: readers reuse only the
  // histograms no snapshot holds.
  const ScoreboardSnapshot again = reader.snapshot();
  BOOST_TEST(full.slots[1].latency->count() == 2u);
  BOOST_TEST(again.latency->count() == 3u);
}

BOOST_AUTO_TEST_CASE(retire_keeps_totals_and_clears_the_slot) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  Slot& s = board.slot(1);
  s.pid = 4242;
  s.state = WorkerState::ready;
  s.generation = 3;
  s.connections_active = 2;
  s.counters.requests = 10;
  s.counters.bytes_in = 20;
  s.counters.bytes_out = 30;
  s.counters.connections_total = 4;
  s.counters.errors = 1;
  board.slot(0).counters.requests = 1;
  ScoreboardReader reader = ScoreboardReader::open(shm.name);
  const CounterValues before = reader.snapshot().totals;

  board.retire(1);
  const ScoreboardSnapshot after = reader.snapshot();
  BOOST_TEST(after.totals.requests == before.requests);
  BOOST_TEST(after.totals.bytes_in == before.bytes_in);
  BOOST_TEST(after.totals.bytes_out == before.bytes_out);
  BOOST_TEST(after.totals.connections_total == before.connections_total);
  BOOST_TEST(after.totals.errors == before.errors);
  BOOST_TEST(board.header().retired.requests == 10u);
  BOOST_TEST(board.header().sequence == 2u);
  const SlotSnapshot& cleared = after.slots[1];
  BOOST_TEST(cleared.pid == 0);
  BOOST_TEST(cleared.state == WorkerState::empty);
  BOOST_TEST(cleared.connections_active == 0u);
  BOOST_TEST(cleared.counters.requests == 0u);
  BOOST_TEST(cleared.counters.errors == 0u);
  BOOST_TEST(after.slots[0].counters.requests == 1u);
}

BOOST_AUTO_TEST_CASE(forked_children_count_into_their_slots) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  const pid_t inherited = ::fork();
  if (inherited == 0) {  // a forked worker uses the master's mapping
    board.slot(0).pid = ::getpid();
    board.slot(0).counters.requests.fetch_add(5);
    { Scoreboard dropped = std::move(board); }  // must not remove the master's segment
    ::_exit(0);
  }
  BOOST_TEST(wait_exit_code(inherited) == 0);
  const pid_t spawned = ::fork();
  if (spawned == 0) {  // a spawned worker attaches by name
    try {
      SlotAttachment attachment = SlotAttachment::open(shm.name, 1);
      attachment.slot().counters.bytes_in.fetch_add(123);
      attachment.slot().state = WorkerState::ready;
      ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
  }
  BOOST_TEST(wait_exit_code(spawned) == 0);
  BOOST_TEST(shm_exists(shm.name));
  const ScoreboardSnapshot snap = ScoreboardReader::open(shm.name).snapshot();
  BOOST_TEST(snap.slots[0].pid == inherited);
  BOOST_TEST(snap.slots[0].counters.requests == 5u);
  BOOST_TEST(snap.slots[1].counters.bytes_in == 123u);
  BOOST_TEST(snap.slots[1].state == WorkerState::ready);
}

BOOST_AUTO_TEST_CASE(slot_attachment_checks_the_index) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  BOOST_CHECK_THROW(SlotAttachment::open(shm.name, 2), std::runtime_error);
  BOOST_CHECK_THROW(SlotAttachment::open(shm.name + "_missing", 0), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(stale_segments_are_replaced) {
  FakeHeader dead;
  dead.master_pid = dead_pid();
  FakeHeader ours;
  ours.master_pid = ::getpid();
  FakeHeader old_version;
  old_version.version = scoreboard_version + 1;
  old_version.master_pid = dead_pid();  // another layout, but a prefork scoreboard
  for (const FakeHeader& fake : {dead, ours, old_version}) {
    ShmName shm;
    write_fake_segment(shm.name, fake);
    Scoreboard board = Scoreboard::create(shm.name, 4);
    const ScoreboardSnapshot snap = ScoreboardReader::open(shm.name).snapshot();
    BOOST_TEST(snap.master_pid == ::getpid());
    BOOST_TEST(snap.slots.size() == 4u);
  }
  ShmName garbage;  // not a prefork scoreboard: see foreign_files_are_refused_and_left_alone
  write_fake_segment(garbage.name, FakeHeader{}, 100);
  BOOST_CHECK_THROW(Scoreboard::create(garbage.name, 1), std::runtime_error);
  BOOST_TEST(shm_exists(garbage.name));
}

// A master never deletes what it did not create: a file that is not a
// prefork scoreboard, or a live master's segment of any layout, stays.
BOOST_AUTO_TEST_CASE(foreign_files_are_refused_and_left_alone) {
  ShmName foreign;
  {
    bip::shared_memory_object shm(bip::create_only, foreign.name.c_str(), bip::read_write);
    shm.truncate(4096);
    bip::mapped_region region(shm, bip::read_write);
    std::memset(region.get_address(), 'x', 4096);
  }
  try {
    Scoreboard::create(foreign.name, 2);
    BOOST_FAIL("create() replaced a foreign file");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) ==
               "stats segment /dev/shm/" + foreign.name +
                   " exists and is not a prefork scoreboard; not replacing it (remove it, or "
                   "choose another --stats name)");
  }
  BOOST_REQUIRE(shm_exists(foreign.name));
  bip::shared_memory_object still(bip::open_only, foreign.name.c_str(), bip::read_only);
  bip::mapped_region region(still, bip::read_only);
  BOOST_TEST(region.get_size() == 4096u);
  BOOST_TEST(static_cast<const char*>(region.get_address())[4095] == 'x');

  ShmName empty;  // a zero-length file: no magic either
  { bip::shared_memory_object shm(bip::create_only, empty.name.c_str(), bip::read_write); }
  BOOST_CHECK_THROW(Scoreboard::create(empty.name, 1), std::runtime_error);
  BOOST_TEST(shm_exists(empty.name));

  ShmName other_layout;
  FakeHeader live;
  live.version = scoreboard_version + 1;
  live.master_pid = ::getppid();
  write_fake_segment(other_layout.name, live);
  BOOST_CHECK_THROW(Scoreboard::create(other_layout.name, 1), std::runtime_error);
  BOOST_TEST(shm_exists(other_layout.name));
}

// Another user's segment is never trusted nor replaced, even with a dead
// master in it (a fake header must not keep a master from starting
// either: the refusal names the owner). Needs root, to give it away.
BOOST_AUTO_TEST_CASE(another_users_segment_is_left_alone) {
  if (::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root to chown a segment");
    return;
  }
  ShmName shm;
  FakeHeader dead;
  dead.master_pid = dead_pid();
  write_fake_segment(shm.name, dead);
  BOOST_REQUIRE(::chown(("/dev/shm/" + shm.name).c_str(), 65534, 65534) == 0);
  try {
    Scoreboard::create(shm.name, 2);
    BOOST_FAIL("create() replaced another user's segment");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(contains(e.what(), "belongs to user 65534, not to this one (0)"), e.what());
  }
  struct stat st {};
  BOOST_REQUIRE(::stat(("/dev/shm/" + shm.name).c_str(), &st) == 0);
  BOOST_TEST(st.st_uid == 65534u);
}

BOOST_AUTO_TEST_CASE(zombie_masters_segment_is_replaced) {
  const pid_t zombie = ::fork();  // a killed master its parent has not reaped yet
  if (zombie == 0) ::_exit(0);
  siginfo_t info{};
  BOOST_REQUIRE(::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT) == 0);
  ShmName shm;
  FakeHeader fake;
  fake.master_pid = zombie;
  write_fake_segment(shm.name, fake);
  BOOST_CHECK_NO_THROW(Scoreboard::create(shm.name, 1));
  ::waitpid(zombie, nullptr, 0);
}

BOOST_AUTO_TEST_CASE(live_masters_segment_is_refused) {
  ShmName shm;
  FakeHeader live;
  live.master_pid = ::getppid();
  write_fake_segment(shm.name, live);
  try {
    Scoreboard::create(shm.name, 2);
    BOOST_FAIL("create() took a live master's segment");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) ==
               "stats segment " + shm.name + " is in use by running master " +
                   std::to_string(::getppid()) + "; choose another --stats name");
  }
  BOOST_TEST(ScoreboardReader::open(shm.name).snapshot().master_pid == ::getppid());
}

BOOST_AUTO_TEST_CASE(reader_refuses_foreign_segments) {
  ShmName missing;
  BOOST_TEST(reader_error(missing.name) == "no stats segment named " + missing.name +
                                               " (is the server running with --stats " +
                                               missing.name + "?)");

  ShmName magic;
  FakeHeader bad_magic;
  bad_magic.magic = 0x1234;
  write_fake_segment(magic.name, bad_magic);
  BOOST_TEST(reader_error(magic.name) ==
             "stats segment " + magic.name + " is not a prefork scoreboard");

  ShmName version;
  FakeHeader bad_version;
  bad_version.version = 99;
  write_fake_segment(version.name, bad_version);
  BOOST_TEST(reader_error(version.name) ==
             "stats segment " + version.name +
                 " has layout version 99, this reader understands version " +
                 std::to_string(scoreboard_version));

  ShmName size;
  FakeHeader bad_size;
  bad_size.slot_count = 3;  // but sized for 2
  write_fake_segment(size.name, bad_size);
  BOOST_TEST(
      contains(reader_error(size.name), "stats segment " + size.name + " has the wrong size"));

  ShmName tiny;
  write_fake_segment(tiny.name, FakeHeader{}, 4);
  BOOST_TEST(contains(reader_error(tiny.name), "is not a prefork scoreboard"));
}

BOOST_AUTO_TEST_CASE(totals_never_go_backwards_while_workers_retire) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 4);
  constexpr std::uint64_t child_requests = 1'000'000;
  int go[2];
  BOOST_REQUIRE(::pipe(go) == 0);
  const pid_t child = ::fork();
  if (child == 0) {  // a worker in slot 0, counting as fast as it can
    char byte;
    if (::read(go[0], &byte, 1) != 1) ::_exit(1);
    Counters& c = board.slot(0).counters;
    for (std::uint64_t i = 0; i < child_requests; ++i) {
      c.requests.fetch_add(1, relaxed);
      c.bytes_in.fetch_add(3, relaxed);
    }
    ::_exit(0);
  }
  ::close(go[0]);

  // The master's own slots count 7 at a time between these two marks, so a
  // snapshot must show an amount within them: a retire() seen half done (the
  // slot cleared but not yet folded in, or folded in but not yet cleared)
  // falls outside.
  std::atomic<std::uint64_t> own_at_least{0}, own_at_most{0};
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> backwards{0}, torn{0}, snapshots{0};
  std::thread reader([&] {
    try {
      ScoreboardReader r = ScoreboardReader::open(shm.name);
      CounterValues last;
      while (!done.load()) {
        const std::uint64_t at_least = own_at_least.load();
        const ScoreboardSnapshot snap = r.snapshot();
        const std::uint64_t at_most = own_at_most.load();
        const CounterValues& now = snap.totals;
        if (now.requests < last.requests || now.bytes_in < last.bytes_in) backwards.fetch_add(1);
        const std::uint64_t own = now.requests - snap.slots[0].counters.requests;
        if (own < at_least || own > at_most) torn.fetch_add(1);
        last = now;
        snapshots.fetch_add(1);
      }
    } catch (...) {
      backwards.fetch_add(1'000'000'000);
    }
  });

  // The master's side: short-lived "workers" in slots 1..3, retired at once.
  BOOST_REQUIRE(::write(go[1], "g", 1) == 1);
  ::close(go[1]);
  // Runs on after the child is done: the race it looks for is narrow.
  const auto until = std::chrono::steady_clock::now() + 500ms;
  std::uint64_t own_requests = 0;
  int status = 0;
  bool child_running = true;
  for (unsigned slot = 1; child_running || std::chrono::steady_clock::now() < until;
       slot = slot % 3 + 1) {
    if (child_running) child_running = ::waitpid(child, &status, WNOHANG) == 0;
    own_requests += 7;
    own_at_most.store(own_requests);
    board.slot(slot).counters.requests.fetch_add(7, std::memory_order_release);
    board.slot(slot).counters.bytes_in.fetch_add(1, relaxed);
    own_at_least.store(own_requests);
    board.retire(slot);
  }
  done = true;
  reader.join();

  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  BOOST_TEST(backwards.load() == 0u);
  BOOST_TEST(torn.load() == 0u);
  BOOST_TEST(snapshots.load() > 0u);
  const ScoreboardSnapshot final_snap = ScoreboardReader::open(shm.name).snapshot();
  BOOST_TEST(final_snap.totals.requests == child_requests + own_requests);
  BOOST_TEST(final_snap.totals.bytes_in == 3 * child_requests + own_requests / 7);
  BOOST_TEST_MESSAGE(snapshots.load() << " snapshots, " << own_requests / 7 << " retirements");
}

// ---- A segment scribbled over while it is read -----------------------------

// The reader keeps the counts it checked at open(): a header written over
// afterwards is reported, never followed out of the segment.
BOOST_AUTO_TEST_CASE(a_scribbled_header_is_reported_not_followed) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 4);
  const ScoreboardReader reader = ScoreboardReader::open(shm.name);
  BOOST_TEST(reader.snapshot().corrupt.empty());
  Header& h = board.header();
  h.slot_count = 40;  // far past the segment's end
  h.slots_in_use.store(1'000'000, relaxed);
  h.listener_count = 9999;
  h.segment_size = 1;
  const ScoreboardSnapshot snap =
      reader.snapshot(ScoreboardReader::Latencies::copied, ScoreboardReader::Wait::none);
  BOOST_TEST(snap.slots.size() == 4u);
  BOOST_TEST(snap.listeners.empty());
  BOOST_TEST(snap.totals.listeners.empty());
  BOOST_TEST_MESSAGE(snap.corrupt);
  BOOST_TEST(contains(snap.corrupt, "stats segment " + shm.name + " is corrupt: "));
  BOOST_TEST(contains(snap.corrupt, "slot count is 40, was 4"));
  BOOST_TEST(contains(snap.corrupt, "1000000 slots in use, of 4"));
  BOOST_TEST(contains(snap.corrupt, "listener count is 9999, was 0"));
}

BOOST_AUTO_TEST_CASE(random_bytes_over_header_and_slots_never_crash_a_reader) {
  ShmName shm;
  const Listener listeners[] = {{Protocol::framed, {}, Address::parse("127.0.0.1:1")}};
  Scoreboard board = Scoreboard::create(shm.name, 3, listeners);
  const ScoreboardReader reader = ScoreboardReader::open(shm.name);
  BOOST_TEST(reader.snapshot().corrupt.empty());
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto scribble = [&state](void* at, std::size_t size) {
    auto* bytes = static_cast<unsigned char*>(at);
    for (std::size_t i = 0; i < size; ++i) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      bytes[i] = static_cast<unsigned char>(state);
    }
  };
  for (int round = 0; round < 20; ++round) {
    scribble(&board.header(), sizeof(Header));
    scribble(&board.slot(round % 3), sizeof(Slot));
    const ScoreboardSnapshot snap =
        reader.snapshot(ScoreboardReader::Latencies::copied, ScoreboardReader::Wait::none);
    BOOST_TEST(snap.slots.size() <= 3u);
    BOOST_TEST(snap.listeners.size() == 1u);
    BOOST_TEST(!snap.corrupt.empty());
  }
  // Random bytes before a reader opens the segment: refused with a message.
  ShmName noise;
  write_fake_segment(noise.name, FakeHeader{}, sizeof(Header) + 2 * sizeof(Slot));
  {
    bip::shared_memory_object shm2(bip::open_only, noise.name.c_str(), bip::read_write);
    bip::mapped_region region(shm2, bip::read_write);
    scribble(region.get_address(), region.get_size());
  }
  BOOST_TEST(contains(reader_error(noise.name), "is not a prefork scoreboard"));
}

BOOST_AUTO_TEST_CASE(a_listener_record_scribbled_over_is_named_by_its_index) {
  ShmName shm;
  const Listener listeners[] = {{Protocol::framed, {}, Address::parse("127.0.0.1:1")},
                                {Protocol::datagram, {}, Address::parse("127.0.0.1:2")}};
  Scoreboard board = Scoreboard::create(shm.name, 1, listeners);
  const ScoreboardReader reader = ScoreboardReader::open(shm.name);
  ListenerRecord& record = board.header().listeners[0];
  std::memset(record.name, '\x07', sizeof record.name);  // no NUL, not text
  board.header().listeners[1].protocol = 77;
  const ScoreboardSnapshot snap = reader.snapshot();
  BOOST_REQUIRE(snap.listeners.size() == 2u);
  BOOST_TEST(snap.listeners[0].name == "listener 0");
  BOOST_TEST(snap.listeners[1].name == "listener 1");
  BOOST_TEST(contains(snap.corrupt, "listener 0 is not a listener record"));
  BOOST_TEST(contains(snap.corrupt, "listener 1 is not a listener record"));
}

// A sequence left odd (a writer killed or stopped inside its update, or a
// scribble) bounds the wait; with Wait::none (the master's) there is none.
BOOST_AUTO_TEST_CASE(an_odd_sequence_stuck_is_reported_not_spun_on) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  board.slot(1).counters.requests.store(5, relaxed);
  const ScoreboardReader reader = ScoreboardReader::open(shm.name);
  BOOST_TEST(reader.snapshot().slots[1].counters.requests == 5u);
  board.slot(1).sequence.store(7, relaxed);
  board.header().sequence.store(3, relaxed);
  for (auto wait : {ScoreboardReader::Wait::none, ScoreboardReader::Wait::bounded}) {
    ScoreboardSnapshot snap;
    BOOST_REQUIRE_NO_THROW(snap = reader.snapshot(ScoreboardReader::Latencies::skipped, wait));
    BOOST_TEST(snap.slots[1].stale);
    BOOST_TEST(snap.slots[1].counters.requests == 5u);  // the last whole copy
    BOOST_TEST(!snap.slots[0].stale);
    BOOST_TEST(contains(snap.corrupt, "its header's sequence stays odd or keeps changing (3)"));
  }
  board.header().sequence.store(4, relaxed);
  board.slot(1).sequence.store(8, relaxed);
  const ScoreboardSnapshot healed = reader.snapshot();
  BOOST_TEST(healed.corrupt.empty());
  BOOST_TEST(!healed.slots[1].stale);
}

BOOST_AUTO_TEST_CASE(a_slot_with_an_impossible_state_or_pid_is_reported) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  const ScoreboardReader reader = ScoreboardReader::open(shm.name);
  board.slot(0).state.store(static_cast<WorkerState>(99), relaxed);
  board.slot(1).pid.store(-5, relaxed);
  const ScoreboardSnapshot snap = reader.snapshot();
  BOOST_TEST(contains(snap.corrupt, "slot 0 has state 99"));
  BOOST_TEST(contains(snap.corrupt, "slot 1 has pid -5"));
}

// A worker's wild write lands nowhere the master relies on: outside its own
// slot and the accept lock, its mapping is read-only (the write kills it).
BOOST_AUTO_TEST_CASE(a_protected_worker_writes_only_its_slot_and_the_accept_lock) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 3);
  auto in_child = [&board](auto wild_write) {
    const pid_t child = ::fork();
    if (child == 0) {
      die_on_segv();
      board.protect_for_worker(1);
      board.slot(1).counters.requests.store(7, relaxed);  // its own slot
      board.header().accept_lock[0] = 1;                  // the accept lock
      wild_write();
      ::_exit(0);
    }
    return wait_exit_code(child);
  };
  BOOST_TEST(in_child([] {}) == 0);
  BOOST_TEST(board.slot(1).counters.requests.load() == 7u);
  BOOST_TEST(board.header().accept_lock[0] == 1);
  BOOST_TEST(in_child([&board] { board.header().slot_count = 40; }) != 0);
  BOOST_TEST(board.header().slot_count == 3u);
  BOOST_TEST(in_child([&board] { board.header().sequence.store(1, relaxed); }) != 0);
  BOOST_TEST(board.header().sequence.load() == 0u);
  BOOST_TEST(in_child([&board] { board.slot(0).sequence.store(1, relaxed); }) != 0);
  BOOST_TEST(in_child([&board] { board.slot(2).pid.store(-1, relaxed); }) != 0);
  BOOST_TEST(board.slot(0).sequence.load() == 0u);
  BOOST_TEST(board.slot(2).pid.load() == 0);

  // A spawned worker's attachment is protected the same way.
  const pid_t child = ::fork();
  if (child == 0) {
    die_on_segv();
    SlotAttachment attachment = SlotAttachment::open(shm.name, 2);
    attachment.slot().counters.requests.store(9, relaxed);
    attachment.header().slot_count = 40;
    ::_exit(0);
  }
  BOOST_TEST(wait_exit_code(child) != 0);
  BOOST_TEST(board.slot(2).counters.requests.load() == 9u);
  BOOST_TEST(board.header().slot_count == 3u);
}

// Any process of the master's user may `truncate -s 0 /dev/shm/NAME` while
// the master and its readers run: reading or writing past the new end
// raises SIGBUS, which must not end the reader or the master.
BOOST_AUTO_TEST_CASE(a_segment_truncated_under_a_reader_is_reported_not_a_sigbus) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 2);
  ScoreboardReader reader = ScoreboardReader::open(shm.name);
  BOOST_TEST(reader.snapshot().corrupt.empty());
  BOOST_REQUIRE(::truncate(("/dev/shm/" + shm.name).c_str(), 0) == 0);
  for (auto wait : {ScoreboardReader::Wait::bounded, ScoreboardReader::Wait::none}) {
    const ScoreboardSnapshot snap = reader.snapshot(ScoreboardReader::Latencies::copied, wait);
    BOOST_TEST(contains(snap.corrupt, "truncated to 0 bytes"), snap.corrupt);
    BOOST_TEST(snap.master_pid == ::getpid());
    BOOST_TEST(snap.latency != nullptr);
    BOOST_TEST(snap.slots.empty());
  }
}

BOOST_AUTO_TEST_CASE(the_master_survives_a_truncated_segment_and_gives_its_size_back) {
  ShmName shm;
  std::vector<Listener> listeners;
  listeners.push_back({Protocol::stream, UniqueFd{}, Address::parse("127.0.0.1:1")});
  Scoreboard board = Scoreboard::create(shm.name, 2, listeners);
  ScoreboardReader reader = ScoreboardReader::open(shm.name);
  board.slot(1).pid.store(4242);
  const std::string path = "/dev/shm/" + shm.name;
  BOOST_REQUIRE(::truncate(path.c_str(), 0) == 0);
  // The fold of a dead worker's slot: its first store faults, is survived,
  // and the segment is its size again, zero-filled.
  board.retire(1);
  struct stat st {};
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST(static_cast<std::size_t>(st.st_size) == sizeof(Header) + 2 * sizeof(Slot));
  BOOST_TEST(board.slot(1).pid.load() == 0);
  // The same for the master's other stores, and for its reads.
  BOOST_REQUIRE(::truncate(path.c_str(), 0) == 0);
  board.publish_queue(0, 1, 2);
  BOOST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST(st.st_size > 0);
  BOOST_REQUIRE(::truncate(path.c_str(), 0) == 0);
  std::int32_t pid = -1;
  BOOST_TEST(!board.access([&] { pid = board.slot(0).pid.load(); }));
  BOOST_TEST(board.access([&] { pid = board.slot(0).pid.load(); }));
  BOOST_TEST(pid == 0);
  // Its figures are gone: readers say so.
  BOOST_TEST(contains(reader.snapshot().corrupt, "magic is 0"), reader.snapshot().corrupt);
}
