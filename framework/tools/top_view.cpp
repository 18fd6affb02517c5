#include "top_view.hpp"

#include <prefork/core/utf8.hpp>

#include <prefork/histogram.hpp>

#include <time.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <memory>

namespace prefork_top {

namespace {

using prefork::Histogram;
using prefork::ScoreboardSnapshot;
using prefork::SlotSnapshot;
using ull = unsigned long long;

std::string format(const char* pattern, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* pattern, ...) {
  va_list args, again;
  va_start(args, pattern);
  va_copy(again, args);
  std::string out;
  const int n = std::vsnprintf(nullptr, 0, pattern, args);
  if (n > 0) {
    out.resize(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(out.data(), out.size(), pattern, again);
    out.resize(static_cast<std::size_t>(n));
  }
  va_end(again);
  va_end(args);
  return out;
}

// A UTF-8 sequence the terminal may show: valid, and not a C1 control
// (U+0080..U+009F act as escapes on some terminals).
std::size_t printable_utf8_length(std::string_view s, std::size_t i) {
  const std::size_t n = prefork::utf8_length(s, i);
  if (n == 2 && static_cast<unsigned char>(s[i]) == 0xC2 &&
      static_cast<unsigned char>(s[i + 1]) < 0xA0)
    return 0;
  return n;
}

// Names are arbitrary bytes: nothing in them may reach the terminal as a
// control sequence, and the line width must stay countable.
std::string printable(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
      ++i;
    } else if (std::size_t n = c >= 0x80 ? printable_utf8_length(text, i) : 0; n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

std::string clock_time(std::uint64_t realtime_ns) {
  const auto seconds = static_cast<time_t>(realtime_ns / 1'000'000'000);
  tm local{};
  ::localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  return format("%s.%03llu", text, static_cast<ull>(realtime_ns / 1'000'000 % 1000));
}

std::uint64_t age(std::uint64_t now_ns, std::uint64_t then_ns) {
  return now_ns > then_ns ? now_ns - then_ns : 0;
}

// For the header: "02:03:04", "3d 02:03:04".
std::string long_duration(std::uint64_t ns) {
  const ull s = ns / 1'000'000'000;
  std::string days = s >= 86400 ? format("%llud ", s / 86400) : "";
  return days + format("%02llu:%02llu:%02llu", s / 3600 % 24, s / 60 % 60, s % 60);
}

// For a column: one token, at most 8 characters ("12:34", "1:02:03", "3d04h").
std::string compact_duration(std::uint64_t ns) {
  const ull s = ns / 1'000'000'000;
  if (s < 3600) return format("%02llu:%02llu", s / 60, s % 60);
  if (s < 86400) return format("%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
  return format("%llud%02lluh", s / 86400, s / 3600 % 24);
}

std::string latency_text(std::uint64_t ns) {
  if (ns < 1'000) return format("%lluns", static_cast<ull>(ns));
  if (ns < 1'000'000) return format("%.1fus", static_cast<double>(ns) / 1e3);
  if (ns < 1'000'000'000) return format("%.2fms", static_cast<double>(ns) / 1e6);
  return format("%.2fs", static_cast<double>(ns) / 1e9);
}

std::string rate_text(std::uint64_t count, double seconds) {
  const double r = static_cast<double>(count) / seconds;
  return r < 100 ? format("%.1f", r) : format("%.0f", r);
}

// What happened to the worker now in slot `s` since the previous refresh:
// its copy then, or null when the slot held another worker (or none), so
// that its counters count from zero.
const SlotSnapshot* earlier_copy(const SlotSnapshot& s, const Sample* before) {
  if (before == nullptr || s.slot >= before->snap.slots.size()) return nullptr;
  const SlotSnapshot& then = before->snap.slots[s.slot];
  return then.pid == s.pid && then.generation == s.generation ? &then : nullptr;
}

// A counter's growth; a reader's copy may lag behind an older one (a stale
// slot), which is no growth rather than a negative rate.
std::uint64_t growth(std::uint64_t now, const std::uint64_t* then) {
  if (then == nullptr) return now;
  return now >= *then ? now - *then : 0;
}

// The values recorded between two copies of a histogram (`then` null: all).
std::unique_ptr<Histogram> recorded_since(const Histogram& now, const Histogram* then) {
  auto delta = std::make_unique<Histogram>(now);
  if (then != nullptr) delta->subtract(*then);
  return delta;
}

std::string percentiles(const Histogram& h) {
  if (h.count() == 0) return "-";
  return format("p50 %s p99 %s p99.9 %s", latency_text(h.percentile(50)).c_str(),
                latency_text(h.percentile(99)).c_str(), latency_text(h.percentile(99.9)).c_str());
}

bool live(const SlotSnapshot& s) { return s.pid != 0 && s.state != prefork::WorkerState::empty; }

struct Column {
  const char* title;
  int width;
  bool left = false;
};
// Every cell is one token (no spaces), so that scripts can split rows.
constexpr std::array<Column, 14> columns{{{"SLOT", 5},
                                          {"PID", 7},
                                          {"STATE", 9, true},
                                          {"GEN", 4},
                                          {"UPTIME", 8},
                                          {"REQ/S", 8},
                                          {"REQUESTS", 9},
                                          {"ERRS", 5},
                                          {"ACTIVE", 6},
                                          {"ACCEPTED", 8},
                                          {"SHARE%", 6},
                                          {"P99", 8},
                                          {"RSS", 7},
                                          {"HB-AGE", 7}}};
using Row = std::array<std::string, columns.size()>;

std::string table_line(const Row& cells) {
  std::string out;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const int width = columns[i].width;
    out += format(columns[i].left ? "%s%-*s" : "%s%*s", i == 0 ? "" : " ", width, cells[i].c_str());
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + "B";
  const char* units = "KMGTPE";
  double value = static_cast<double>(bytes) / 1024;
  while (value >= 1024 && units[1] != '\0') {
    value /= 1024;
    ++units;
  }
  return format("%.1f%c", value, *units);
}

std::vector<std::string> render_table(std::string_view name, const Sample& now,
                                      const Sample* before) {
  const ScoreboardSnapshot& snap = now.snap;
  const double seconds = before != nullptr && now.monotonic_ns > before->monotonic_ns
                             ? static_cast<double>(now.monotonic_ns - before->monotonic_ns) / 1e9
                             : 0;
  const bool have_rates = seconds > 0;
  std::vector<std::string> lines;

  lines.push_back(format("%s  prefork-top %s  master %d  up %s", clock_time(snap.taken_ns).c_str(),
                         printable(name).c_str(), static_cast<int>(snap.master_pid),
                         long_duration(age(snap.taken_ns, snap.started_ns)).c_str()));

  unsigned ready = 0, live_count = 0, accepted_none = 0;
  std::uint64_t accepted_live = 0, accepted_max = 0, accepted_min = UINT64_MAX;
  for (const SlotSnapshot& s : snap.slots) {
    ready += s.state == prefork::WorkerState::ready;
    if (!live(s)) continue;
    ++live_count;
    accepted_none += s.counters.connections_total == 0;
    accepted_live += s.counters.connections_total;
    accepted_max = std::max(accepted_max, s.counters.connections_total);
    accepted_min = std::min(accepted_min, s.counters.connections_total);
  }
  lines.push_back(
      format("workers %u/%zu ready  generation %llu  restarts %llu (crashed %llu, signaled %llu, "
             "recycled %llu)",
             ready, snap.slots.size(), static_cast<ull>(snap.generation),
             static_cast<ull>(snap.worker_restarts), static_cast<ull>(snap.exits_crashed),
             static_cast<ull>(snap.exits_signaled), static_cast<ull>(snap.exits_recycled)));

  for (const prefork::ListenerInfo& l : snap.listeners) {
    if (l.protocol == prefork::Protocol::datagram) {  // UDP has no accept queue
      lines.push_back(format("listener %s", printable(l.name).c_str()));
      continue;
    }
    // The master publishes queue depths periodically; none yet is not "0".
    const std::string queue =
        snap.metrics_updated_ns == 0 ? "?" : format("%u/%u", l.queue_depth, l.queue_limit);
    lines.push_back(
        format("listener %s  accept queue %s", printable(l.name).c_str(), queue.c_str()));
  }

  const prefork::CounterValues& totals = snap.totals;
  const std::uint64_t* totals_then = before ? &before->snap.totals.requests : nullptr;
  std::string errors = format("errors %llu", static_cast<ull>(totals.errors));
  if (totals.errors > 0) {
    std::string kinds;
    for (unsigned k = 0; k < prefork::error_kind_count; ++k) {
      if (totals.error_kinds[k] == 0) continue;
      kinds += format("%s%s %llu", kinds.empty() ? "" : ", ",
                      prefork::error_kind_name(static_cast<prefork::ErrorKind>(k)),
                      static_cast<ull>(totals.error_kinds[k]));
    }
    errors += " (" + kinds + ")";
  }
  const std::string total_rate =
      have_rates ? rate_text(growth(totals.requests, totals_then), seconds) : "-";
  lines.push_back(format("total  req/s %s  requests %llu  %s  in %s  out %s", total_rate.c_str(),
                         static_cast<ull>(totals.requests), errors.c_str(),
                         human_bytes(totals.bytes_in).c_str(),
                         human_bytes(totals.bytes_out).c_str()));

  std::unique_ptr<Histogram> total_interval;
  if (have_rates) total_interval = recorded_since(*snap.latency, before->snap.latency.get());
  const std::string last_interval =
      total_interval ? format("last %.1fs: %s", seconds, percentiles(*total_interval).c_str())
                     : "last interval: -";
  lines.push_back(format("latency  %s  since start: %s", last_interval.c_str(),
                         percentiles(*snap.latency).c_str()));

  // A ratio only once every live worker has accepted a connection: before
  // that, one worker's first connection would read as an infinite skew.
  std::string share = "-", none_yet;
  if (live_count > 0 && accepted_none == 0)
    share = format("%.2f", static_cast<double>(accepted_max) / static_cast<double>(accepted_min));
  if (accepted_none > 0)
    none_yet =
        format(" (%u %s accepted none yet)", accepted_none, accepted_none == 1 ? "has" : "have");
  lines.push_back(format("accepted share  max/min %s across %u live workers%s", share.c_str(),
                         live_count, none_yet.c_str()));
  lines.emplace_back();

  Row titles;
  for (std::size_t i = 0; i < columns.size(); ++i) titles[i] = columns[i].title;
  lines.push_back(table_line(titles));

  bool late_marked = false, stale_marked = false, waiting_marked = false, cap_marked = false;
  std::uint64_t active = 0, rss = 0;
  for (const SlotSnapshot& s : snap.slots) {
    Row row;
    row.fill("-");
    row[0] = std::to_string(s.slot);
    row[2] = prefork::worker_state_name(s.state);
    if (s.stale) {
      row[2] += '*';
      stale_marked = true;
    }
    active += s.connections_active;
    if (!live(s)) {
      lines.push_back(table_line(row));
      continue;
    }
    rss += s.rss_bytes;
    const SlotSnapshot* then = earlier_copy(s, before);
    row[1] = std::to_string(s.pid);
    row[3] = std::to_string(s.generation);
    if (s.started_ns != 0) row[4] = compact_duration(age(snap.taken_ns, s.started_ns));
    if (have_rates)
      row[5] = rate_text(growth(s.counters.requests, then ? &then->counters.requests : nullptr),
                         seconds);
    row[6] = std::to_string(s.counters.requests);
    row[7] = std::to_string(s.counters.errors);
    row[8] = std::to_string(s.connections_active);
    if (prefork::at_connection_cap(s)) {
      row[8] += '^';
      cap_marked = true;
    }
    row[9] = std::to_string(s.counters.connections_total);
    if (accepted_live > 0)
      row[10] = format("%.1f", 100.0 * static_cast<double>(s.counters.connections_total) /
                                   static_cast<double>(accepted_live));
    if (have_rates) {
      const auto interval = recorded_since(*s.latency, then ? then->latency.get() : nullptr);
      if (interval->count() > 0) row[11] = latency_text(interval->percentile(99));
    }
    if (s.rss_bytes != 0) row[12] = human_bytes(s.rss_bytes);
    if (s.heartbeat_ns != 0) {
      const std::uint64_t beat = age(snap.taken_ns, s.heartbeat_ns);
      row[13] = format("%.1fs", static_cast<double>(beat) / 1e9);
      // Asleep in accept() or recvmsg(), the kernel wakes it: an old beat
      // is expected then, not a sign of trouble.
      if (beat > heartbeat_late_ns && s.waiting > 0) {
        row[13] += '_';
        waiting_marked = true;
      } else if (beat > heartbeat_late_ns) {
        row[13] += '!';
        late_marked = true;
      }
    }
    lines.push_back(table_line(row));
  }

  // Workers that have exited are in the totals too, so a sum over slots
  // may be smaller than this row.
  Row total_row;
  total_row.fill("-");
  total_row[0] = "TOTAL";
  total_row[4] = compact_duration(age(snap.taken_ns, snap.started_ns));
  total_row[5] = total_rate;
  total_row[6] = std::to_string(totals.requests);
  total_row[7] = std::to_string(totals.errors);
  total_row[8] = std::to_string(active);
  total_row[9] = std::to_string(totals.connections_total);
  if (total_interval && total_interval->count() > 0)
    total_row[11] = latency_text(total_interval->percentile(99));
  if (rss != 0) total_row[12] = human_bytes(rss);
  lines.push_back(table_line(total_row));

  if (late_marked || stale_marked || waiting_marked || cap_marked) {
    std::string legend;
    if (cap_marked) legend += "^ at its connection cap: accepting no more until one closes";
    if (waiting_marked)
      legend += std::string(legend.empty() ? "" : "   ") +
                "_ idle: asleep in accept/recvmsg, waiting for work";
    if (late_marked)
      legend += std::string(legend.empty() ? "" : "   ") + "! heartbeat older than 3 s";
    if (stale_marked)
      legend += std::string(legend.empty() ? "" : "   ") +
                "* stale: its writer stopped mid-update; last whole counters shown";
    lines.push_back(legend);
  }
  return lines;
}

std::vector<std::string> fit(std::vector<std::string> lines, unsigned columns, unsigned rows) {
  if (columns == 0) columns = 80;  // a terminal that reports no size
  if (rows == 0) rows = 24;
  if (lines.size() > rows) {
    const std::size_t hidden = lines.size() - rows + 1;
    lines.resize(rows - 1);
    lines.push_back(format("(%zu more lines: enlarge the window)", hidden));
  }
  for (std::string& line : lines) {
    // Counts code points (continuation bytes add no column); cuts between them.
    unsigned used = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;
      if (++used > columns) {
        line.resize(i);
        break;
      }
    }
  }
  return lines;
}

}  // namespace prefork_top
