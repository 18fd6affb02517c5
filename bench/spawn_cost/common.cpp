#include "common.hpp"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>

namespace spawn_cost {

namespace {

volatile sig_atomic_t stop_flag = 0;

void on_stop_signal(int) { stop_flag = 1; }

double at_rank(const std::vector<std::int64_t>& sorted, double quantile) {
  // Nearest rank: the smallest sample with at least `quantile` of them at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(quantile * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1000.0;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  return text;
}

}  // namespace

Summary summarize(std::vector<std::int64_t> samples_ns) {
  Summary summary;
  if (samples_ns.empty()) return summary;
  std::sort(samples_ns.begin(), samples_ns.end());
  summary.n = samples_ns.size();
  summary.median = at_rank(samples_ns, 0.5);
  summary.p90 = at_rank(samples_ns, 0.9);
  summary.p99 = at_rank(samples_ns, 0.99);
  summary.min = static_cast<double>(samples_ns.front()) / 1000.0;
  summary.max = static_cast<double>(samples_ns.back()) / 1000.0;
  return summary;
}

std::string summary_json(const Summary& s) {
  return "{\"n\": " + std::to_string(s.n) + ", \"median\": " + number(s.median) +
         ", \"p90\": " + number(s.p90) + ", \"p99\": " + number(s.p99) +
         ", \"min\": " + number(s.min) + ", \"max\": " + number(s.max) + "}";
}

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + '"';
}

std::string summary_columns(const Summary& s) {
  char text[96];
  std::snprintf(text, sizeof text, "%9.1f %9.1f %9.1f %9.1f %9.1f", s.median, s.p90, s.p99, s.min,
                s.max);
  return text;
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  ::sigemptyset(&action.sa_mask);
  for (int number : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(number, &action, nullptr);
}

bool stop_requested() noexcept { return stop_flag != 0; }

void sleep_ns(std::int64_t ns) noexcept {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  ::nanosleep(&ts, nullptr);  // an early wake-up by a signal is fine: callers re-check
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    auto comma = text.find(',');
    parts.push_back(text.substr(0, comma));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return parts;
}

}  // namespace spawn_cost
