// The scoreboard's reader (ScoreboardReader: prefork-top's, and the master's
// /metrics endpoint's) on any segment: open() refuses it with a message, or
// snapshot() gives a copy, whose problems are in `corrupt`, that renders as
// the endpoint renders it; never a read out of bounds, a hang or a spin.
// The segment is a real POSIX shared-memory object of the size the input
// chooses (the reader maps a file: a buffer would skip open()'s checks),
// unlinked as soon as the reader has mapped it, so that a crash leaves no
// segment behind.
//
// Input: a control byte, a size byte, then the segment's bytes as overlays
// on a base segment (a real writer's, with counts, or zeros): the first
// bytes cover the header up to its latency histogram, the next ones slot 0
// up to its histogram, then slot 1, and so on.
//   control bits 0-1  slots (0 to 3)
//           bit 2     base: the real writer's segment (else zeros)
//           bits 3-4  size: exact; shorter or longer by 1 + 64 x the size
//                     byte; or the overlays alone (random bytes, whole)
//           bit 5     the bytes no overlay covers (histograms) are the
//                     input's again, repeated, instead of the base's
//           bit 6     latencies skipped (in the first snapshot; the second
//                     always skips them); bit 7 Wait::none
#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/exposition.hpp>
#include <prefork/log.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr unsigned max_slots = 3;
constexpr std::size_t header_part = offsetof(prefork::Header, retired_latency);
constexpr std::size_t slot_part = offsetof(prefork::Slot, latency);

std::size_t size_for(unsigned slots) {
  return sizeof(prefork::Header) + slots * sizeof(prefork::Slot);
}

const std::string& name() {
  static const std::string n = "prefork-fuzz-reader-" + std::to_string(::getpid());
  return n;
}

// What the real writer leaves: two listeners, a worker per slot with
// requests, errors, closes and latencies, and one retired.
std::vector<char> writer_segment(unsigned slots) {
  std::vector<prefork::Listener> listeners;
  listeners.push_back(
      {prefork::Protocol::stream, prefork::UniqueFd{}, prefork::Address::parse("127.0.0.1:8080")});
  listeners.push_back(
      {prefork::Protocol::datagram, prefork::UniqueFd{}, prefork::Address::parse("[::1]:53")});
  prefork::Scoreboard board = prefork::Scoreboard::create(name(), slots, listeners);
  board.publish_queue(0, 3, 128);
  board.header().worker_restarts.store(2);
  for (unsigned i = 0; i < slots; ++i) {
    prefork::Slot& slot = board.slot(i);
    slot.pid.store(static_cast<std::int32_t>(1000 + i));
    slot.state.store(prefork::WorkerState::ready);
    slot.generation.store(1);
    prefork::SlotWriter writer(slot);
    writer.connection_opened(0);
    writer.request(0);
    writer.request(1, 12);
    writer.error(prefork::ErrorKind::truncated_datagram, 1);
    writer.latency(1500);
    writer.latency(3'000'000);
    writer.connection_closed(0, prefork::CloseReason::peer_closed);
  }
  if (slots > 0) board.retire(0);
  const char* base = reinterpret_cast<const char*>(&board.header());
  return std::vector<char>(base, base + size_for(slots));
}

const std::vector<char>& base_of(unsigned slots, bool writer) {
  static std::array<std::vector<char>, max_slots + 1> written, zeros;
  std::vector<char>& b = writer ? written[slots] : zeros[slots];
  if (b.empty()) b = writer ? writer_segment(slots) : std::vector<char>(size_for(slots));
  return b;
}

// PREFORK_FUZZ_SEEDS=DIR writes the seeds of the committed corpus: the real
// writer's segments as overlays of themselves, whole, for 1 to 3 slots.
void write_seeds(const std::string& dir) {
  for (unsigned slots = 1; slots <= max_slots; ++slots) {
    const std::vector<char>& base = base_of(slots, true);
    std::string seed{static_cast<char>(slots | 4), '\0'};
    seed.append(base.data(), header_part);
    for (unsigned i = 0; i < slots; ++i) seed.append(base.data() + size_for(i), slot_part);
    const std::string path = dir + "/seed-writer-whole-" + std::to_string(slots);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::write(fd, seed.data(), seed.size()) != static_cast<ssize_t>(seed.size()))
      std::abort();
    ::close(fd);
  }
}

std::uint64_t sum(const prefork::CounterValues& c) { return c.requests + c.errors + c.bytes_in; }

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("PREFORK_FUZZ_SEEDS")) write_seeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = (prefork::configure_log({.level = prefork::LogLevel::error}), true);
  (void)quiet;
  if (size < 2) return 0;
  const unsigned slots = data[0] & 3;
  const bool writer = (data[0] & 4) != 0;
  const unsigned size_mode = (data[0] >> 3) & 3;
  const bool fill = (data[0] & 0x20) != 0;
  const auto latencies = (data[0] & 0x40) ? prefork::ScoreboardReader::Latencies::skipped
                                          : prefork::ScoreboardReader::Latencies::copied;
  const auto wait = (data[0] & 0x80) ? prefork::ScoreboardReader::Wait::none
                                     : prefork::ScoreboardReader::Wait::bounded;
  const std::size_t delta = 1 + std::size_t{data[1]} * 64;
  const std::uint8_t* bytes = data + 2;
  const std::size_t count = size - 2;

  static std::vector<char> segment;
  const std::vector<char>& base = base_of(slots, writer);
  segment.assign(base.begin(), base.end());
  if (fill && count > 0)
    for (std::size_t i = 0; i < segment.size(); ++i)
      segment[i] = static_cast<char>(bytes[i % count]);
  // The overlays: the header's first part, then each slot's.
  std::size_t used = 0;
  auto overlay = [&](std::size_t at, std::size_t part) {
    const std::size_t n = std::min(part, count - used);
    std::memcpy(segment.data() + at, bytes + used, n);
    used += n;
  };
  overlay(0, header_part);
  for (unsigned i = 0; i < slots; ++i) overlay(size_for(i), slot_part);
  switch (size_mode) {
    case 0:
      break;
    case 1:
      segment.resize(segment.size() - std::min(segment.size(), delta));
      break;
    case 2:
      segment.resize(segment.size() + delta);
      break;
    default:
      segment.assign(bytes, bytes + count);
  }

  const int fd = ::shm_open(("/" + name()).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) std::abort();
  const bool written =
      ::ftruncate(fd, static_cast<off_t>(segment.size())) == 0 &&
      ::pwrite(fd, segment.data(), segment.size(), 0) == static_cast<ssize_t>(segment.size());
  ::close(fd);
  std::optional<prefork::ScoreboardReader> reader;
  try {
    if (written) reader.emplace(prefork::ScoreboardReader::open(name()));
  } catch (const std::runtime_error& e) {
    if (std::strstr(e.what(), name().c_str()) == nullptr) std::abort();  // says which segment
  }
  ::shm_unlink(("/" + name()).c_str());
  if (!written) std::abort();
  if (!reader) return 0;

  // Twice, as a poller does (the second reuses the reader's buffers); the
  // 33,796-bucket histograms once only, as they take most of the time.
  for (int round = 0; round < 2; ++round) {
    const prefork::ScoreboardSnapshot snap = reader->snapshot(
        round == 0 ? latencies : prefork::ScoreboardReader::Latencies::skipped, wait);
    if (snap.slots.size() > slots || !snap.latency || !snap.retired_latency) std::abort();
    // The totals are the retired counts and every slot's, whatever they are.
    std::uint64_t total = sum(snap.retired);
    for (const prefork::SlotSnapshot& s : snap.slots) {
      if (!s.latency || s.counters.listeners.size() != snap.listeners.size()) std::abort();
      total += sum(s.counters);
    }
    if (sum(snap.totals) != total) std::abort();
    if (round == 0)
      (void)prefork::render_metrics(snap, prefork::MetricsFormat::openmetrics);
    else
      (void)prefork::render_json(snap, name());
  }
  return 0;
}
