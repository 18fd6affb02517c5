// prefork-top: shows a running server's scoreboard, as a table like top(1) or
// as JSON lines. It only reads the segment; it never changes it.
#include <prefork/scoreboard.hpp>

#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

namespace {

using prefork::ScoreboardSnapshot;
using prefork::SlotSnapshot;

constexpr const char* usage =
    "usage: prefork-top [--json] [--once] [--interval SECONDS] NAME\n"
    "Shows the scoreboard of the server started with --stats NAME.\n"
    "  --json          one JSON document per refresh, one per line\n"
    "  --once          print one refresh and exit\n"
    "  --interval S    seconds between refreshes (default 1)\n"
    "  --help          this text\n";

volatile std::sig_atomic_t stop_requested = 0;
void request_stop(int) { stop_requested = 1; }

struct Options {
  bool json = false;
  bool once = false;
  double interval = 1.0;
  std::string name;
};

// Returns -1 to go on, or the exit code.
int parse(int argc, char** argv, Options& options) {
  auto bad = [](const char* what, const char* arg) {
    std::fprintf(stderr, "prefork-top: %s: %s\n%s", what, arg, usage);
    return 2;
  };
  bool names_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string value;
    if (names_only || arg.empty() || arg[0] != '-') {
      if (!options.name.empty()) return bad("more than one NAME", argv[i]);
      options.name = arg;
    } else if (arg == "--") {
      names_only = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--once") {
      options.once = true;
    } else if (arg == "--interval" || arg.starts_with("--interval=")) {
      if (arg == "--interval") {
        if (++i == argc) return bad("missing value for", "--interval");
        value = argv[i];
      } else {
        value = arg.substr(std::strlen("--interval="));
      }
      char* end = nullptr;
      options.interval = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(options.interval > 0 && options.interval <= 86400))
        return bad("--interval wants seconds in (0, 86400]", value.c_str());
    } else {
      return bad("unknown option", argv[i]);
    }
  }
  if (options.name.empty()) {
    std::fputs(usage, stderr);
    return 2;
  }
  return -1;
}

void appendf(std::string& out, const char* format, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* format, ...) {
  va_list args, again;
  va_start(args, format);
  va_copy(again, args);
  const int n = std::vsnprintf(nullptr, 0, format, args);
  if (n > 0) {
    const std::size_t used = out.size();
    out.resize(used + static_cast<std::size_t>(n) + 1);
    std::vsnprintf(out.data() + used, static_cast<std::size_t>(n) + 1, format, again);
    out.resize(used + static_cast<std::size_t>(n));
  }
  va_end(again);
  va_end(args);
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  const std::size_t n = c >= 0xC2 && c <= 0xDF   ? 2
                        : c >= 0xE0 && c <= 0xEF ? 3
                        : c >= 0xF0 && c <= 0xF4 ? 4
                                                 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  const unsigned char second = byte(i + 1);  // rules out overlong forms, surrogates, > U+10FFFF
  if ((c == 0xE0 && second < 0xA0) || (c == 0xED && second > 0x9F) ||
      (c == 0xF0 && second < 0x90) || (c == 0xF4 && second > 0x8F))
    return 0;
  return n;
}

// Segment names are arbitrary bytes; invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      appendf(out, "\\u%04x", c);
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (std::size_t n = utf8_length(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    } else {
      out += "\\ufffd";
    }
    ++i;
  }
  out += '"';
}

double uptime_s(const ScoreboardSnapshot& snap) {
  const std::uint64_t now = prefork::realtime_ns();
  return now > snap.started_ns ? static_cast<double>(now - snap.started_ns) / 1e9 : 0.0;
}

std::string json_frame(const std::string& name, const ScoreboardSnapshot& snap) {
  using ull = unsigned long long;
  std::string out = "{\"name\":";
  append_json_string(out, name);
  appendf(out, ",\"master_pid\":%d,\"uptime_s\":%.3f,\"worker_restarts\":%llu,\"workers\":[",
          static_cast<int>(snap.master_pid), uptime_s(snap),
          static_cast<ull>(snap.worker_restarts));
  for (const SlotSnapshot& s : snap.slots) {
    appendf(out, "%s{\"slot\":%u,\"pid\":%d,\"state\":\"%s\",\"generation\":%llu,",
            s.slot == 0 ? "" : ",", s.slot, static_cast<int>(s.pid),
            prefork::worker_state_name(s.state), static_cast<ull>(s.generation));
    appendf(out, "\"requests\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,",
            static_cast<ull>(s.counters.requests), static_cast<ull>(s.counters.bytes_in),
            static_cast<ull>(s.counters.bytes_out));
    appendf(out, "\"connections_active\":%llu,\"connections_total\":%llu,\"errors\":%llu,",
            static_cast<ull>(s.connections_active), static_cast<ull>(s.counters.connections_total),
            static_cast<ull>(s.counters.errors));
    appendf(out, "\"started_ns\":%llu,\"heartbeat_ns\":%llu}", static_cast<ull>(s.started_ns),
            static_cast<ull>(s.heartbeat_ns));
  }
  const prefork::CounterValues& t = snap.totals;
  appendf(out, "],\"totals\":{\"requests\":%llu,\"errors\":%llu,\"worker_restarts\":%llu,",
          static_cast<ull>(t.requests), static_cast<ull>(t.errors),
          static_cast<ull>(snap.worker_restarts));
  appendf(out, "\"bytes_in\":%llu,\"bytes_out\":%llu,\"connections_total\":%llu}}\n",
          static_cast<ull>(t.bytes_in), static_cast<ull>(t.bytes_out),
          static_cast<ull>(t.connections_total));
  return out;
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + "B";
  const char* units = "KMGTPE";
  double value = static_cast<double>(bytes) / 1024;
  while (value >= 1024 && units[1] != '\0') {
    value /= 1024;
    ++units;
  }
  std::string out;
  appendf(out, "%.1f%c", value, *units);
  return out;
}

std::string human_duration(double seconds) {
  const auto s = static_cast<unsigned long long>(seconds);
  std::string out;
  if (s >= 86400) appendf(out, "%llud ", s / 86400);
  appendf(out, "%02llu:%02llu:%02llu", s / 3600 % 24, s / 60 % 60, s % 60);
  return out;
}

// The previous refresh, for requests per second.
struct Previous {
  bool valid = false;
  timespec at{};
  ScoreboardSnapshot snap;
};

timespec monotonic_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts;
}

std::string rate(std::uint64_t now, std::uint64_t before, double seconds) {
  if (seconds <= 0 || now < before) return "-";
  std::string out;
  appendf(out, "%.1f", static_cast<double>(now - before) / seconds);
  return out;
}

// Control bytes in a name must not reach the terminal as escape sequences.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

std::string table_frame(const std::string& name, const ScoreboardSnapshot& snap,
                        const Previous& prev, const timespec& now) {
  using ull = unsigned long long;
  const double dt = prev.valid ? static_cast<double>(now.tv_sec - prev.at.tv_sec) +
                                     (now.tv_nsec - prev.at.tv_nsec) / 1e9
                               : 0;
  unsigned ready = 0;
  for (const SlotSnapshot& s : snap.slots) ready += s.state == prefork::WorkerState::ready;

  std::string out = "prefork-top  " + printable(name);
  appendf(out, "  master %d  up %s  workers %u/%zu ready  restarts %llu\n",
          static_cast<int>(snap.master_pid), human_duration(uptime_s(snap)).c_str(), ready,
          snap.slots.size(), static_cast<ull>(snap.worker_restarts));
  appendf(out, "%5s %8s %-8s %5s %12s %10s %9s %9s %15s %8s\n", "SLOT", "PID", "STATE", "GEN",
          "REQ", "REQ/S", "IN", "OUT", "CONNS", "ERR");
  auto row = [&](const char* label, const char* pid, const char* state, const char* gen,
                 const prefork::CounterValues& c, const std::string& per_second,
                 std::uint64_t active) {
    const std::string conns = std::to_string(active) + "/" + std::to_string(c.connections_total);
    appendf(out, "%5s %8s %-8s %5s %12llu %10s %9s %9s %15s %8llu\n", label, pid, state, gen,
            static_cast<ull>(c.requests), per_second.c_str(), human_bytes(c.bytes_in).c_str(),
            human_bytes(c.bytes_out).c_str(), conns.c_str(), static_cast<ull>(c.errors));
  };
  std::uint64_t active = 0;
  for (const SlotSnapshot& s : snap.slots) {
    active += s.connections_active;
    std::string per_second = "-";
    if (prev.valid && s.slot < prev.snap.slots.size()) {
      const SlotSnapshot& before = prev.snap.slots[s.slot];
      if (before.pid == s.pid && before.generation == s.generation)
        per_second = rate(s.counters.requests, before.counters.requests, dt);
    }
    const std::string slot = std::to_string(s.slot), pid = std::to_string(s.pid),
                      gen = std::to_string(s.generation);
    row(slot.c_str(), s.pid == 0 ? "-" : pid.c_str(), prefork::worker_state_name(s.state),
        gen.c_str(), s.counters, per_second, s.connections_active);
  }
  row("TOTAL", "", "", "", snap.totals,
      prev.valid ? rate(snap.totals.requests, prev.snap.totals.requests, dt) : "-", active);
  return out;
}

void write_all(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

int run(const Options& options) {
  prefork::ScoreboardReader reader = prefork::ScoreboardReader::open(options.name);

  // SIGINT/SIGTERM stay blocked except inside ppoll, so a stop request can
  // never slip in between the check of the flag and the sleep.
  sigset_t stop_signals, sleep_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  ::sigprocmask(SIG_BLOCK, &stop_signals, &sleep_mask);
  sigdelset(&sleep_mask, SIGINT);
  sigdelset(&sleep_mask, SIGTERM);
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  Previous prev;
  for (bool first = true; !stop_requested; first = false) {
    if (!options.once && reader.unlinked()) {
      std::fprintf(stderr, "prefork-top: stats segment %s was removed; stopping\n",
                   options.name.c_str());
      return 0;
    }
    ScoreboardSnapshot snap = reader.snapshot();
    if (!options.once && !prefork::process_running(snap.master_pid)) {
      std::fprintf(stderr, "prefork-top: master %d of %s has exited; stopping\n",
                   static_cast<int>(snap.master_pid), options.name.c_str());
      return 0;
    }
    const timespec now = monotonic_now();
    if (options.json) {
      write_all(json_frame(options.name, snap));
    } else {
      const char* separator = tty ? "\x1b[H\x1b[2J" : first ? "" : "\n";
      write_all(separator + table_frame(options.name, snap, prev, now));
    }
    if (options.once) return 0;
    prev = {true, now, std::move(snap)};

    double whole = 0;
    const double fraction = std::modf(options.interval, &whole);
    const timespec pause{static_cast<time_t>(whole), static_cast<long>(fraction * 1e9)};
    if (::ppoll(nullptr, 0, &pause, &sleep_mask) < 0 && errno != EINTR) {
      std::fprintf(stderr, "prefork-top: ppoll failed: %s\n", std::strerror(errno));
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (int code = parse(argc, argv, options); code >= 0) return code;
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefork-top: %s\n", e.what());
    return 1;
  }
}
