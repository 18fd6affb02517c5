#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <prefork/core/bus_guard.hpp>
#include <prefork/core/robust_mutex.hpp>

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>

namespace prefork {

namespace bip = boost::interprocess;

static_assert(sizeof(Header) % alignof(Slot) == 0, "slots must start aligned after the header");
static_assert(sizeof(Header) % scoreboard_page == 0 && sizeof(Slot) % scoreboard_page == 0,
              "slots and the header's accept lock must start on pages of their own");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::int32_t>::is_always_lock_free,
              "atomics shared between processes must be lock-free");

namespace {

using namespace std::chrono_literals;

#ifndef PREFORK_FUZZ_BUILD
// A master that is between creating the segment and publishing its magic.
constexpr auto settle_timeout = 200ms;
// Longer than any retire() can take, unless its master died in the middle.
constexpr auto snapshot_timeout = 1s;
// How long a reader waits for a slot's writer to leave its update: an update
// takes nanoseconds, but its writer may be preempted inside it; longer than
// this, it was stopped or killed there.
constexpr auto slot_patience = 50ms;
#else
// The fuzz build (tests/fuzz/scoreboard_reader_fuzz.cpp): the same bounded
// waits, short enough that a segment left mid-update costs microseconds.
constexpr auto settle_timeout = 100us;
constexpr auto snapshot_timeout = 100us;
constexpr auto slot_patience = 100us;
#endif
constexpr int snapshot_spins = 64;

std::size_t size_for(std::uint64_t slot_count) {
  return sizeof(Header) + slot_count * sizeof(Slot);
}

std::string path_of(const std::string& name) { return "/dev/shm/" + name; }

[[noreturn]] void throw_ipc(const char* call, const std::string& name,
                            const bip::interprocess_exception& e) {
  if (e.get_native_error() != 0) throw SystemError(call, e.get_native_error(), path_of(name));
  throw std::runtime_error(std::string(call) + ' ' + path_of(name) + ": " + e.what());
}

// An open, mapped segment. The region is left unmapped when the object is
// still empty (its creator has not sized it yet).
struct Mapping {
  bip::shared_memory_object shm;
  bip::mapped_region region;

  void* base() const { return region.get_address(); }
  std::size_t size() const { return region.get_size(); }
  Header* header() const { return static_cast<Header*>(base()); }
  Slot* slots() const {
    return reinterpret_cast<Slot*>(static_cast<char*>(base()) + sizeof(Header));
  }
  // The magic is stored last by the creator; zero means not ready yet.
  std::uint64_t magic() const {
    if (size() < sizeof(std::uint64_t)) return 0;
    return std::atomic_ref<std::uint64_t>(header()->magic).load(std::memory_order_acquire);
  }
};

// Makes [begin, end) of the mapping read-only; both are page-aligned.
void read_only(char* base, std::size_t begin, std::size_t end) noexcept {
  if (end > begin && ::mprotect(base + begin, end - begin, PROT_READ) != 0)
    log_sys_error("mprotect", errno, "scoreboard bytes %zu to %zu", begin, end);
}

// What a worker does not write, read-only in its own address space.
void protect(const Mapping& m, std::size_t slot_count, unsigned slot) noexcept {
  if (::sysconf(_SC_PAGESIZE) != static_cast<long>(scoreboard_page)) return;  // layout unfit
  char* base = static_cast<char*>(m.base());
  const std::size_t lock =
      static_cast<std::size_t>(reinterpret_cast<char*>(&m.header()->accept_lock) - base);
  read_only(base, 0, lock);
  const std::size_t mine = sizeof(Header) + slot * sizeof(Slot);
  read_only(base, sizeof(Header), mine);
  read_only(base, mine + sizeof(Slot), sizeof(Header) + slot_count * sizeof(Slot));
}

// Opens and maps NAME; nullopt when it does not exist. Waits briefly while a
// concurrent creator is still filling it in.
std::optional<Mapping> open_settled(const std::string& name, bip::mode_t mode) {
  const auto deadline = std::chrono::steady_clock::now() + settle_timeout;
  for (;;) {
    Mapping m;
    try {
      m.shm = bip::shared_memory_object(bip::open_only, name.c_str(), mode);
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() == bip::not_found_error) return std::nullopt;
      throw_ipc("shm_open", name, e);
    }
    bip::offset_t size = 0;
    if (!m.shm.get_size(size)) throw SystemError("fstat", errno, path_of(name));
    if (size > 0) {
      try {
        m.region = bip::mapped_region(m.shm, mode);
      } catch (const bip::interprocess_exception& e) {
        throw_ipc("mmap", name, e);
      }
    }
    if (m.magic() != 0 || std::chrono::steady_clock::now() >= deadline) return m;
    std::this_thread::sleep_for(2ms);
  }
}

// Why the segment cannot be used by this build, or an empty string.
std::string layout_problem(const Mapping& m, const std::string& name, const char* who) {
  const std::string segment = "stats segment " + name;
  if (m.size() < sizeof(std::uint64_t) + sizeof(std::uint32_t) || m.magic() != scoreboard_magic)
    return segment + " is not a prefork scoreboard";
  const Header& h = *m.header();
  if (h.version != scoreboard_version)
    return segment + " has layout version " + std::to_string(h.version) + ", this " + who +
           " understands version " + std::to_string(scoreboard_version);
  if (m.size() < sizeof(Header) || h.segment_size != m.size() || m.size() != size_for(h.slot_count))
    return segment + " has the wrong size: " + std::to_string(m.size()) + " bytes, expected " +
           (m.size() < sizeof(Header) ? std::to_string(sizeof(Header)) + " or more"
                                      : std::to_string(size_for(h.slot_count)) + " for " +
                                            std::to_string(h.slot_count) + " slots");
  return {};
}

Mapping open_valid(const std::string& name, bip::mode_t mode, const char* who) {
  std::optional<Mapping> m = open_settled(name, mode);
  if (!m)
    throw std::runtime_error("no stats segment named " + name +
                             " (is the server running with --stats " + name + "?)");
  if (std::string problem = layout_problem(*m, name, who); !problem.empty())
    throw std::runtime_error(problem);
  return std::move(*m);
}

// Called when create_only found NAME taken: removes it only when it is a
// prefork scoreboard (of any layout version) of this user whose master is
// gone; refuses anything else, which this master did not create.
void remove_unless_in_use(const std::string& name) {
  std::optional<Mapping> existing = open_settled(name, bip::read_only);
  if (!existing) return;  // its owner removed it meanwhile
  const std::string segment = "stats segment " + path_of(name);
  struct stat st {};
  if (::fstat(existing->shm.get_mapping_handle().handle, &st) != 0)
    throw SystemError("fstat", errno, path_of(name));
  if (existing->size() < offsetof(Header, master_pid) + sizeof(std::int32_t) ||
      existing->magic() != scoreboard_magic)
    throw std::runtime_error(segment +
                             " exists and is not a prefork scoreboard; not replacing it "
                             "(remove it, or choose another --stats name)");
  if (st.st_uid != ::geteuid())
    throw std::runtime_error(segment + " belongs to user " + std::to_string(st.st_uid) +
                             ", not to this one (" + std::to_string(::geteuid()) +
                             "); not replacing it (choose another --stats name)");
  const pid_t master = existing->header()->master_pid;
  if (master != ::getpid() && process_running(master))
    throw std::runtime_error("stats segment " + name + " is in use by running master " +
                             std::to_string(master) + "; choose another --stats name");
  const std::string reason = "stats segment " + name + " belonged to master " +
                             std::to_string(master) +
                             (master == ::getpid() ? ", this process" : ", which is gone");
  bip::shared_memory_object::remove(name.c_str());
  log_info("%s; replaced it with a new one", reason.c_str());
}

// Calls f(a's counter, b's counter) for every counter of the two (slot
// totals, error kinds, close reasons, the first `listeners` listeners): the one list of the
// fields, for Counters (shared memory) and CounterValues (copies) alike.
template <class A, class B, class F>
void each_counter(A& a, B& b, std::size_t listeners, F f) {
  f(a.requests, b.requests);
  f(a.bytes_in, b.bytes_in);
  f(a.bytes_out, b.bytes_out);
  f(a.connections_total, b.connections_total);
  f(a.errors, b.errors);
  for (unsigned k = 0; k < error_kind_count; ++k) f(a.error_kinds[k], b.error_kinds[k]);
  for (unsigned r = 0; r < close_reason_count; ++r) f(a.closes[r], b.closes[r]);
  for (std::size_t i = 0; i < listeners; ++i) {
    f(a.listeners[i].requests, b.listeners[i].requests);
    f(a.listeners[i].errors, b.listeners[i].errors);
    f(a.listeners[i].connections, b.listeners[i].connections);
    f(a.listeners[i].bytes_in, b.listeners[i].bytes_in);
    f(a.listeners[i].bytes_out, b.listeners[i].bytes_out);
  }
}

CounterValues load(const Counters& c, unsigned listener_count) {
  CounterValues v;
  v.listeners.resize(listener_count);
  each_counter(v, c, listener_count, [](std::uint64_t& to, const std::atomic<std::uint64_t>& from) {
    to = from.load(std::memory_order_relaxed);
  });
  return v;
}

// Adds `from` into `into` and zeroes `from`; the caller holds the sequence.
void fold(Counters& into, Counters& from) {
  constexpr auto relaxed = std::memory_order_relaxed;
  each_counter(into, from, scoreboard_max_listeners,
               [](std::atomic<std::uint64_t>& to, std::atomic<std::uint64_t>& source) {
                 to.store(to.load(relaxed) + source.load(relaxed), relaxed);
                 source.store(0, relaxed);
               });
}

// One slot's counters, whole: retries while its writer is inside an update.
// False when the writer stays inside longer than slot_patience (with
// Wait::none, a few spins): it was stopped or killed there, or the slot was
// scribbled over.
bool read_slot_counters(const Slot& s, unsigned listener_count, CounterValues& out,
                        ScoreboardReader::Wait wait) {
  std::chrono::steady_clock::time_point give_up{};
  for (int attempt = 0;; ++attempt) {
    const std::uint64_t before = s.sequence.load(std::memory_order_acquire);
    if (before % 2 == 0) {
      CounterValues copy = load(s.counters, listener_count);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.sequence.load(std::memory_order_relaxed) == before) {
        out = std::move(copy);
        return true;
      }
    }
    if (attempt < snapshot_spins) continue;
    if (wait == ScoreboardReader::Wait::none) return false;
    const auto now = std::chrono::steady_clock::now();
    if (attempt == snapshot_spins)
      give_up = now + slot_patience;
    else if (now >= give_up)
      return false;
    // Yield to a preempted writer first; then stop burning the CPU.
    if (attempt < 2 * snapshot_spins)
      ::sched_yield();
    else
      std::this_thread::sleep_for(100us);
  }
}

const std::shared_ptr<const Histogram>& no_latencies_shared() {
  static const auto empty = std::make_shared<const Histogram>();
  return empty;
}

bool printable(const char* text, std::size_t size) {
  const std::size_t n = ::strnlen(text, size);
  return n < size && std::all_of(text, text + n, [](char c) { return c >= 0x20 && c < 0x7f; });
}

}  // namespace

CounterValues& CounterValues::operator+=(const CounterValues& from) {
  if (listeners.size() < from.listeners.size()) listeners.resize(from.listeners.size());
  each_counter(*this, from, from.listeners.size(),
               [](std::uint64_t& to, std::uint64_t value) { to += value; });
  return *this;
}

const char* error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::oversized_frame:
      return "oversized_frame";
    case ErrorKind::truncated_datagram:
      return "truncated_datagram";
    case ErrorKind::peer_reset:
      return "peer_reset";
    case ErrorKind::handler_exception:
      return "handler_exception";
    case ErrorKind::other:
      return "other";
  }
  return "unknown";
}

const char* worker_state_name(WorkerState state) noexcept {
  switch (state) {
    case WorkerState::empty:
      return "empty";
    case WorkerState::starting:
      return "starting";
    case WorkerState::ready:
      return "ready";
    case WorkerState::stopping:
      return "stopping";
  }
  return "unknown";
}

std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// ---- Scoreboard ------------------------------------------------------------

struct Scoreboard::Impl {
  std::string name;
  pid_t creator = ::getpid();
  Mapping mapping;
  unsigned slot_count = 0;
  unsigned listener_count = 0;

  explicit Impl(std::string n) : name(std::move(n)) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  // Forked workers inherit this object; only the creator may remove the name.
  ~Impl() {
    if (::getpid() == creator && !disowned) bip::shared_memory_object::remove(name.c_str());
  }
  bool disowned = false;
};

Scoreboard Scoreboard::create(const std::string& name, unsigned slot_count,
                              std::span<const Listener> listeners) {
  if (listeners.size() > scoreboard_max_listeners)
    throw std::invalid_argument("at most " + std::to_string(scoreboard_max_listeners) +
                                " listeners are supported, not " +
                                std::to_string(listeners.size()));
  std::optional<bip::shared_memory_object> shm;
  for (int attempt = 0; !shm; ++attempt) {
    try {
      shm.emplace(bip::create_only, name.c_str(), bip::read_write, bip::permissions(0600));
    } catch (const bip::interprocess_exception& e) {
      // A second EEXIST means another master raced us to the name.
      if (e.get_error_code() != bip::already_exists_error || attempt > 0)
        throw_ipc("shm_open", name, e);
      remove_unless_in_use(name);
    }
  }

  auto impl = std::make_unique<Impl>(name);  // from here on a failure removes the segment
  impl->mapping.shm = std::move(*shm);
  impl->slot_count = slot_count;
  impl->listener_count = static_cast<unsigned>(listeners.size());
  const std::size_t size = size_for(slot_count);
  try {
    impl->mapping.shm.truncate(static_cast<bip::offset_t>(size));
  } catch (const bip::interprocess_exception& e) {
    throw_ipc("posix_fallocate", name, e);
  }
  try {
    impl->mapping.region = bip::mapped_region(impl->mapping.shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    throw_ipc("mmap", name, e);
  }

  // Default-initialised: the magic keeps the zero from posix_fallocate until
  // the release store below, so concurrent readers never see a plain write.
  Header* h = new (impl->mapping.base()) Header;
  h->version = scoreboard_version;
  h->slot_count = slot_count;
  h->slots_in_use.store(slot_count, std::memory_order_relaxed);
  h->segment_size = size;
  h->master_pid = ::getpid();
  h->listener_count = static_cast<std::uint32_t>(listeners.size());
  h->started_ns = realtime_ns();
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    ListenerRecord& record = h->listeners[i];
    record.protocol = static_cast<std::uint32_t>(listeners[i].protocol);
    std::snprintf(record.name, sizeof record.name, "%s %s",
                  std::string(protocol_name(listeners[i].protocol)).c_str(),
                  listeners[i].local.to_string().c_str());
  }
  h->retired_latency.reset();
  for (unsigned i = 0; i < slot_count; ++i) {
    Slot* slot = new (impl->mapping.slots() + i) Slot{};
    slot->latency.reset();
    init_robust_mutex(slot->writer_lock, "slot writer lock");
  }
  // Readers take a non-zero magic to mean that everything above is in place.
  std::atomic_ref<std::uint64_t>(h->magic).store(scoreboard_magic, std::memory_order_release);
  return Scoreboard(std::move(impl));
}

Scoreboard::Scoreboard(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Scoreboard::Scoreboard(Scoreboard&&) noexcept = default;
Scoreboard& Scoreboard::operator=(Scoreboard&&) noexcept = default;
Scoreboard::~Scoreboard() = default;

const std::string& Scoreboard::name() const noexcept { return impl_->name; }
Header& Scoreboard::header() noexcept { return *impl_->mapping.header(); }
Slot& Scoreboard::slot(unsigned index) noexcept { return impl_->mapping.slots()[index]; }
unsigned Scoreboard::slot_count() const noexcept { return impl_->slot_count; }

// The writer side of the seqlock that snapshot() reads. The slot's own
// writer is gone (reaped), so its sequence is not taken.
void Scoreboard::retire(unsigned index) noexcept {
  access([this, index] { fold_in(index); });
}

void Scoreboard::fold_in(unsigned index) noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  Header& h = header();
  Slot& s = slot(index);
  std::uint64_t sequence = h.sequence.load(relaxed);
  // Only this process writes it: odd here means scribbled over; even again
  // from now on, so that readers need not wait for it.
  sequence += sequence & 1;
  h.sequence.store(sequence + 1, relaxed);
  // A reader that sees any store below also sees the odd sequence.
  std::atomic_thread_fence(std::memory_order_release);

  fold(h.retired, s.counters);
  h.retired_latency.merge(s.latency);
  s.latency.reset();
  // A worker killed inside an update left its sequence odd.
  const std::uint64_t slot_sequence = s.sequence.load(relaxed);
  s.sequence.store(slot_sequence + (slot_sequence & 1), relaxed);
  s.connections_active.store(0, relaxed);
  s.connections_max.store(0, relaxed);
  s.waiting.store(0, relaxed);
  s.retire_requested.store(0, relaxed);
  s.started_ns.store(0, relaxed);
  s.heartbeat_ns.store(0, relaxed);
  s.rss_bytes.store(0, relaxed);
  s.pid.store(0, relaxed);
  s.state.store(WorkerState::empty, relaxed);

  h.sequence.store(sequence + 2, std::memory_order_release);
}

void Scoreboard::take_name(const std::string& name) {
  if (name == impl_->name) return;
  if (::rename(path_of(impl_->name).c_str(), path_of(name).c_str()) != 0)
    throw SystemError("rename", errno, path_of(impl_->name) + " to " + path_of(name));
  impl_->name = name;
}

void Scoreboard::disown_name() noexcept { impl_->disowned = true; }

void Scoreboard::protect_for_worker(unsigned slot) noexcept {
  protect(impl_->mapping, impl_->slot_count, slot);
}

void Scoreboard::publish_queue(unsigned listener, std::uint32_t depth,
                               std::uint32_t limit) noexcept {
  Header& h = header();
  if (listener >= impl_->listener_count) return;  // never the live count: see ScoreboardReader
  access([&h, listener, depth, limit] {
    h.listeners[listener].queue_depth.store(depth, std::memory_order_relaxed);
    h.listeners[listener].queue_limit.store(limit, std::memory_order_relaxed);
    h.metrics_updated_ns.store(realtime_ns(), std::memory_order_relaxed);
  });
}

bool Scoreboard::access(void (*body)(void*), void* context) noexcept {
  Mapping& m = impl_->mapping;
  if (run_guarded(m.base(), m.size(), body, context)) return true;
  if (::ftruncate(m.shm.get_mapping_handle().handle, static_cast<off_t>(m.size())) != 0)
    log_sys_error("ftruncate", errno, "stats segment %s back to %zu bytes", impl_->name.c_str(),
                  m.size());
  else
    log_error(
        "stats segment %s was truncated under the master: gave it its %zu bytes back, "
        "zero-filled where it was cut (its figures are lost; readers report it corrupt)",
        impl_->name.c_str(), m.size());
  return false;
}

// ---- SlotAttachment --------------------------------------------------------

struct SlotAttachment::Impl {
  Mapping mapping;
  Slot* slot = nullptr;
};

SlotAttachment SlotAttachment::open(const std::string& name, unsigned slot) {
  auto impl = std::make_unique<Impl>();
  // The table's size comes from the segment's, not from its header: a
  // header scribbled over (by any worker) must not keep the master's
  // replacements from attaching. What the header says is only logged.
  std::optional<Mapping> m = open_settled(name, bip::read_write);
  if (!m)
    throw std::runtime_error("no stats segment named " + name +
                             " (is the server running with --stats " + name + "?)");
  impl->mapping = std::move(*m);
  const std::size_t size = impl->mapping.size();
  if (size < sizeof(Header) || (size - sizeof(Header)) % sizeof(Slot) != 0)
    throw std::runtime_error("stats segment " + name + " has the wrong size for a scoreboard: " +
                             std::to_string(size) + " bytes");
  const std::size_t count = (size - sizeof(Header)) / sizeof(Slot);
  if (std::string problem = layout_problem(impl->mapping, name, "worker"); !problem.empty())
    log_info("%s; attaching to slot %u of the %zu its size holds", problem.c_str(), slot, count);
  if (slot >= count)
    throw std::runtime_error("stats segment " + name + " has " + std::to_string(count) +
                             " slots, no slot " + std::to_string(slot));
  impl->slot = impl->mapping.slots() + slot;
  protect(impl->mapping, count, slot);
  return SlotAttachment(std::move(impl));
}

SlotAttachment::SlotAttachment(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
SlotAttachment::SlotAttachment(SlotAttachment&&) noexcept = default;
SlotAttachment::~SlotAttachment() = default;
Slot& SlotAttachment::slot() noexcept { return *impl_->slot; }
Header& SlotAttachment::header() noexcept { return *impl_->mapping.header(); }

// ---- ScoreboardReader ------------------------------------------------------

struct ScoreboardReader::Impl {
  std::string name;
  Mapping mapping;
  // Fixed when opened, from a header that matched the segment's size: a
  // header scribbled over later is reported, never followed.
  unsigned slot_count = 0;
  unsigned listener_count = 0;
  std::uint64_t segment_size = 0;
  dev_t device = 0;
  ino_t inode = 0;
  // The last whole copy of each slot, for a slot that stays mid-update.
  struct Whole {
    pid_t pid = 0;
    std::uint64_t generation = 0;
    CounterValues counters;
  };
  mutable std::vector<Whole> last;
  // Histograms no snapshot uses any more, for the next one: a fresh 264 KiB
  // allocation costs more in page faults than the copy itself.
  mutable std::vector<std::shared_ptr<Histogram>> histograms;
  pid_t master_pid = 0;  // as opened, for a snapshot of a truncated segment

  // snapshot()'s copy, unguarded.
  ScoreboardSnapshot copy(Latencies latencies, Wait wait) const;
  // Why the segment is shorter than its mapping (someone truncated it), or
  // an empty string.
  std::string truncation() const;
  ScoreboardSnapshot truncated(const std::string& what) const;

  template <class Source>
  std::shared_ptr<Histogram> copy_of(const Source& source) const {
    auto spare = std::find_if(histograms.begin(), histograms.end(),
                              [](const auto& h) { return h.use_count() == 1; });
    if (spare == histograms.end())
      spare = histograms.insert(histograms.end(), std::make_shared<Histogram>());
    (*spare)->copy(source);
    return *spare;
  }
};

ScoreboardReader ScoreboardReader::open(const std::string& name) {
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->mapping = open_valid(name, bip::read_only, "reader");
  const Header& h = *impl->mapping.header();
  impl->slot_count = h.slot_count;
  impl->segment_size = h.segment_size;
  impl->listener_count = h.listener_count;
  impl->master_pid = h.master_pid;
  if (impl->listener_count > scoreboard_max_listeners)
    throw std::runtime_error("stats segment " + name + " is corrupt: its header claims " +
                             std::to_string(impl->listener_count) + " listeners, at most " +
                             std::to_string(scoreboard_max_listeners) + " fit");
  struct stat st {};
  if (::fstat(impl->mapping.shm.get_mapping_handle().handle, &st) != 0)
    throw SystemError("fstat", errno, path_of(name));
  impl->device = st.st_dev;
  impl->inode = st.st_ino;
  return ScoreboardReader(std::move(impl));
}

ScoreboardReader::ScoreboardReader(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
ScoreboardReader::ScoreboardReader(ScoreboardReader&&) noexcept = default;
ScoreboardReader::~ScoreboardReader() = default;

ScoreboardSnapshot ScoreboardReader::Impl::copy(Latencies latencies, Wait wait) const {
  const auto& no_latencies = no_latencies_shared();
  const bool copy_latencies = latencies == Latencies::copied;
  constexpr auto relaxed = std::memory_order_relaxed;
  const Header& h = *mapping.header();
  const Slot* slots = mapping.slots();
  const unsigned listener_count = this->listener_count;
  ScoreboardSnapshot snap;
  auto corrupt = [&snap, this](const std::string& what) {
    if (snap.corrupt.empty())
      snap.corrupt = "stats segment " + name + " is corrupt: " + what;
    else
      snap.corrupt += "; " + what;
  };
  auto changed = [&corrupt](const char* field, std::uint64_t now, std::uint64_t was) {
    if (now != was)
      corrupt(std::string("its header's ") + field + " is " + std::to_string(now) + ", was " +
              std::to_string(was));
  };
  changed("magic", mapping.magic(), scoreboard_magic);
  changed("version", h.version, scoreboard_version);
  changed("slot count", h.slot_count, slot_count);
  changed("segment size", h.segment_size, segment_size);
  changed("listener count", h.listener_count, listener_count);
  snap.master_pid = h.master_pid;
  snap.started_ns = h.started_ns;
  snap.listeners.resize(listener_count);
  for (unsigned i = 0; i < listener_count; ++i) {
    const ListenerRecord& record = h.listeners[i];
    ListenerInfo& l = snap.listeners[i];
    if (record.protocol > static_cast<std::uint32_t>(Protocol::datagram) ||
        !printable(record.name, sizeof record.name)) {
      corrupt("listener " + std::to_string(i) + " is not a listener record");
      l.name = "listener " + std::to_string(i);
      continue;
    }
    l.protocol = static_cast<Protocol>(record.protocol);
    l.name.assign(record.name);
  }
  const unsigned in_use = h.slots_in_use.load(std::memory_order_acquire);
  if (in_use > slot_count)
    corrupt(std::to_string(in_use) + " slots in use, of " + std::to_string(slot_count));
  const unsigned shown = std::min(slot_count, std::max(1u, in_use));
  snap.slots.resize(shown);
  last.resize(shown);

  const auto deadline = std::chrono::steady_clock::now() + snapshot_timeout;
  for (int attempt = 1;; ++attempt) {
    const std::uint64_t before = h.sequence.load(std::memory_order_acquire);
    // Past the wait, one last copy is taken as it is, and reported.
    const bool last_try = attempt > snapshot_spins &&
                          (wait == Wait::none || std::chrono::steady_clock::now() >= deadline);
    if (before % 2 == 0 || last_try) {
      snap.taken_ns = realtime_ns();
      snap.generation = h.generation.load(relaxed);
      snap.worker_restarts = h.worker_restarts.load(relaxed);
      snap.exits_crashed = h.exits_crashed.load(relaxed);
      snap.exits_signaled = h.exits_signaled.load(relaxed);
      snap.exits_recycled = h.exits_recycled.load(relaxed);
      snap.exits_timed_out = h.exits_timed_out.load(relaxed);
      snap.start_failures = h.start_failures.load(relaxed);
      snap.metrics_updated_ns = h.metrics_updated_ns.load(relaxed);
      for (unsigned i = 0; i < listener_count; ++i) {
        snap.listeners[i].queue_depth = h.listeners[i].queue_depth.load(relaxed);
        snap.listeners[i].queue_limit = h.listeners[i].queue_limit.load(relaxed);
      }
      snap.retired = load(h.retired, listener_count);
      snap.retired_latency = copy_latencies ? copy_of(h.retired_latency) : no_latencies;
      for (unsigned i = 0; i < snap.slots.size(); ++i) {
        const Slot& s = slots[i];
        SlotSnapshot& out = snap.slots[i];
        out.slot = i;
        out.pid = s.pid.load(relaxed);
        out.state = s.state.load(relaxed);
        out.generation = s.generation.load(relaxed);
        out.started_ns = s.started_ns.load(relaxed);
        out.heartbeat_ns = s.heartbeat_ns.load(relaxed);
        out.rss_bytes = s.rss_bytes.load(relaxed);
        out.connections_active = s.connections_active.load(relaxed);
        out.connections_max = s.connections_max.load(relaxed);
        out.waiting = s.waiting.load(relaxed);
        const Whole& whole = last[i];
        out.stale = !read_slot_counters(s, listener_count, out.counters, wait);
        if (out.stale) {
          const bool same = whole.pid == out.pid && whole.generation == out.generation;
          out.counters = same ? whole.counters : CounterValues{};
          out.counters.listeners.resize(listener_count);
        }
        out.latency = copy_latencies ? copy_of(s.latency) : no_latencies;
      }
      // Orders the copies above before the second read of the sequence.
      std::atomic_thread_fence(std::memory_order_acquire);
      if (before % 2 == 0 && h.sequence.load(relaxed) == before) break;
      if (last_try) {
        corrupt("its header's sequence stays odd or keeps changing (" + std::to_string(before) +
                "); its master may have died while retiring a worker");
        break;
      }
    }
    if (attempt >= snapshot_spins && wait == Wait::bounded) ::sched_yield();
  }
  for (const SlotSnapshot& s : snap.slots) {
    if (s.pid < 0) corrupt("slot " + std::to_string(s.slot) + " has pid " + std::to_string(s.pid));
    if (static_cast<std::uint32_t>(s.state) > static_cast<std::uint32_t>(WorkerState::stopping))
      corrupt("slot " + std::to_string(s.slot) + " has state " +
              std::to_string(static_cast<std::uint32_t>(s.state)));
  }

  snap.totals = snap.retired;
  std::shared_ptr<Histogram> latency = copy_latencies ? copy_of(*snap.retired_latency) : nullptr;
  for (const SlotSnapshot& s : snap.slots) {
    snap.totals += s.counters;
    if (latency) latency->merge(*s.latency);
    if (!s.stale) last[s.slot] = {s.pid, s.generation, s.counters};
  }
  snap.latency = latency ? std::move(latency) : no_latencies;
  return snap;
}

// What a reader can say of a segment cut under it: nothing but that.
ScoreboardSnapshot ScoreboardReader::Impl::truncated(const std::string& what) const {
  ScoreboardSnapshot snap;
  snap.master_pid = master_pid;
  snap.taken_ns = realtime_ns();
  snap.retired_latency = snap.latency = no_latencies_shared();
  snap.corrupt = "stats segment " + name + " is corrupt: " + what;
  return snap;
}

std::string ScoreboardReader::Impl::truncation() const {
  struct stat st {};
  if (::fstat(mapping.shm.get_mapping_handle().handle, &st) != 0 ||
      static_cast<std::uint64_t>(st.st_size) >= mapping.size())
    return {};
  return "it was truncated to " + std::to_string(st.st_size) + " bytes of its " +
         std::to_string(mapping.size());
}

ScoreboardSnapshot ScoreboardReader::snapshot(Latencies latencies, Wait wait) const {
  // A cut already made costs no fault; the guard covers one made meanwhile.
  if (std::string cut = impl_->truncation(); !cut.empty()) return impl_->truncated(cut);
  ScoreboardSnapshot snap;
  if (run_guarded(impl_->mapping.base(), impl_->mapping.size(),
                  [&] { snap = impl_->copy(latencies, wait); }))
    return snap;
  std::string cut = impl_->truncation();
  return impl_->truncated(cut.empty() ? "it was truncated while read" : cut);
}

bool ScoreboardReader::unlinked() const {
  try {
    bip::shared_memory_object now(bip::open_only, impl_->name.c_str(), bip::read_only);
    struct stat st {};
    if (::fstat(now.get_mapping_handle().handle, &st) != 0) return false;
    return st.st_dev != impl_->device || st.st_ino != impl_->inode;
  } catch (const bip::interprocess_exception& e) {
    return e.get_error_code() == bip::not_found_error;
  }
}

bool process_running(pid_t pid) noexcept {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  char text[512];
  std::snprintf(text, sizeof text, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* stat = std::fopen(text, "re");
  if (stat == nullptr) return true;
  const std::size_t n = std::fread(text, 1, sizeof text - 1, stat);
  std::fclose(stat);
  text[n] = '\0';
  const char* end_of_name = std::strrchr(text, ')');  // the state follows "(comm) "
  return end_of_name == nullptr || end_of_name[1] != ' ' ||
         (end_of_name[2] != 'Z' && end_of_name[2] != 'X');
}

}  // namespace prefork
