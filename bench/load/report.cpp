#include "report.hpp"

#include <unistd.h>

#include <cstdarg>

#include <prefork/error.hpp>

namespace bench {

namespace {

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

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      appendf(out, "\\u%04x", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  out += '"';
}

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1e3; }

double throughput(const RunResult& r) {
  return r.duration_s > 0 ? static_cast<double>(r.requests) / r.duration_s : 0.0;
}

// CPU seconds per wall second over the measured time: 100 is one core busy.
double percent_of_one_core(const RunResult& r) {
  return r.cpu_wall_s > 0 ? 100.0 * (r.user_s + r.sys_s) / r.cpu_wall_s : 0.0;
}

const char* mode_name(const Options& o) { return o.rate > 0 ? "open" : "closed"; }

}  // namespace

std::string describe(const Failure& failure) {
  std::string text = failure.what;
  if (failure.error != 0) text += ": " + prefork::errno_text(failure.error);
  return text;
}

void print_progress(double elapsed_s, bool warming_up, std::uint64_t requests, double last_rps,
                    std::uint64_t errors) {
  std::string line;
  if (warming_up)
    appendf(line, "\r%6.0f s  warming up\033[K", elapsed_s);
  else
    appendf(line, "\r%6.0f s  %llu requests, %.0f req/s in the last second, %llu errors\033[K",
            elapsed_s, static_cast<unsigned long long>(requests), last_rps,
            static_cast<unsigned long long>(errors));
  // One write: a line that is never torn.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

void clear_progress() { [[maybe_unused]] auto n = ::write(STDERR_FILENO, "\r\033[K", 4); }

void print_summary(std::FILE* out, const Options& o, const Exchange& x, const RunResult& r,
                   const Machine& m) {
  std::string s;
  appendf(s, "prefork-bench: %s %s, %s loop%s, %s\n", target_name(o.target), o.address_text.c_str(),
          mode_name(o), o.rate > 0 ? "" : " (each connection sends on each reply)",
          o.new_connection ? "a new connection per request" : "keep-alive");
  appendf(s, "  %u connections on %u threads", o.connections, o.threads);
  if (o.rate > 0) appendf(s, ", %.0f req/s scheduled", o.rate);
  appendf(s, "; request %zu B on the wire, reply %zu B%s\n", x.request.size(), x.reply_size,
          o.check == Check::upper ? ", checked upper-cased" : "");
  appendf(s, "  warm-up %.1f s, then up to %.1f s", o.warmup_s, o.duration_s);
  if (o.requests) appendf(s, " or %llu requests", static_cast<unsigned long long>(o.requests));
  appendf(s, "; timeout %u ms%s\n", o.timeout_ms, r.interrupted ? "; INTERRUPTED" : "");

  appendf(s, "requests    %llu in %.3f s: %.1f req/s\n",
          static_cast<unsigned long long>(r.requests), r.duration_s, throughput(r));
  appendf(s, "errors      %llu", static_cast<unsigned long long>(r.errors.total()));
  for (std::size_t k = 0; k < error_kind_count; ++k) {
    if (r.errors.count[k] == 0) continue;
    appendf(s, "\n  %-15s %llu (first: %s)", error_kind_name(static_cast<ErrorKind>(k)),
            static_cast<unsigned long long>(r.errors.count[k]),
            describe(r.errors.first[k]).c_str());
  }
  s += '\n';
  if (r.starved_connections)
    appendf(s, "starved     %llu connections sent requests and never had one answered\n",
            static_cast<unsigned long long>(r.starved_connections));
  if (r.behind_schedule)  // (requests in flight at the end settle in the drain)
    appendf(s, "behind      %llu requests were due but never sent: the schedule fell behind\n",
            static_cast<unsigned long long>(r.behind_schedule));
  const auto& h = *r.latency;
  appendf(s, "latency µs  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f%s\n",
          us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)), us(h.percentile(99.9)),
          us(h.max()), h.mean() / 1e3, o.rate > 0 ? "  (from each intended send time)" : "");
  appendf(s, "client CPU  user %.2f s + sys %.2f s = %.0f%% of one core (%u usable CPUs)\n",
          r.user_s, r.sys_s, percent_of_one_core(r), m.usable_cpus);
  appendf(s, "machine     %u CPUs, %s, %s, load %.2f\n", m.online_cpus, m.cpu_model.c_str(),
          m.kernel.c_str(), m.load_average);
  std::fputs(s.c_str(), out);
}

std::string to_json(const Options& o, const Exchange& x, const RunResult& r, const Machine& m) {
  std::string j = "{\"target\":{\"protocol\":";
  append_json_string(j, target_name(o.target));
  j += ",\"address\":";
  append_json_string(j, o.address_text);

  appendf(j, "},\"config\":{\"mode\":\"%s\",\"connections\":%u,\"threads\":%u,", mode_name(o),
          o.connections, o.threads);
  appendf(j, "\"new_connection\":%s,", o.new_connection ? "true" : "false");
  if (o.rate > 0)
    appendf(j, "\"rate_rps\":%.3f,", o.rate);
  else
    j += "\"rate_rps\":null,";
  appendf(j, "\"duration_limit_s\":%.3f,\"warmup_s\":%.3f,", o.duration_s, o.warmup_s);
  if (o.requests)
    appendf(j, "\"requests_limit\":%llu,", static_cast<unsigned long long>(o.requests));
  else
    j += "\"requests_limit\":null,";
  appendf(j, "\"timeout_ms\":%u,\"size\":%zu,\"request_bytes\":%zu,\"reply_size\":%zu,",
          o.timeout_ms, x.payload_size, x.request.size(), x.reply_size);
  appendf(j, "\"check\":\"%s\"},", o.check == Check::upper ? "upper" : "none");

  appendf(j, "\"requests\":%llu,\"errors\":{\"total\":%llu",
          static_cast<unsigned long long>(r.requests),
          static_cast<unsigned long long>(r.errors.total()));
  for (std::size_t k = 0; k < error_kind_count; ++k)
    appendf(j, ",\"%s\":%llu", error_kind_name(static_cast<ErrorKind>(k)),
            static_cast<unsigned long long>(r.errors.count[k]));
  j += "},\"error_details\":{";
  bool first = true;
  for (std::size_t k = 0; k < error_kind_count; ++k) {
    if (r.errors.count[k] == 0) continue;
    appendf(j, "%s\"%s\":", first ? "" : ",", error_kind_name(static_cast<ErrorKind>(k)));
    append_json_string(j, describe(r.errors.first[k]));
    first = false;
  }
  appendf(j,
          "},\"unfinished\":{\"in_flight_at_end\":%llu,\"behind_schedule\":%llu,"
          "\"starved_connections\":%llu},",
          static_cast<unsigned long long>(r.in_flight_at_end),
          static_cast<unsigned long long>(r.behind_schedule),
          static_cast<unsigned long long>(r.starved_connections));
  appendf(j, "\"interrupted\":%s,", r.interrupted ? "true" : "false");
  appendf(j, "\"duration_s\":%.6f,\"throughput_rps\":%.3f,", r.duration_s, throughput(r));

  const auto& h = *r.latency;
  appendf(j,
          "\"latency_us\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,"
          "\"mean\":%.3f,\"min\":%.3f},",
          us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)), us(h.percentile(99.9)),
          us(h.max()), h.mean() / 1e3, us(h.min()));
  appendf(j,
          "\"client_cpu\":{\"user_s\":%.3f,\"sys_s\":%.3f,\"percent_of_one_core\":%.1f,"
          "\"percent_of_usable_cpus\":%.1f},",
          r.user_s, r.sys_s, percent_of_one_core(r),
          m.usable_cpus ? percent_of_one_core(r) / m.usable_cpus : 0.0);
  appendf(j, "\"machine\":{\"nproc\":%u,\"online_cpus\":%u,\"cpu_model\":", m.usable_cpus,
          m.online_cpus);
  append_json_string(j, m.cpu_model);
  j += ",\"kernel\":";
  append_json_string(j, m.kernel);
  appendf(j, ",\"load_average_1m\":%.2f}}\n", m.load_average);
  return j;
}

}  // namespace bench
