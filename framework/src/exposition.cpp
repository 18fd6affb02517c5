// The scoreboard snapshot as OpenMetrics, Prometheus text 0.0.4 and JSON.
// Names, labels and the JSON schema are documented in docs/metrics.md; keep
// the two in step.
#include <prefork/exposition.hpp>

#include <prefork/core/utf8.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

namespace {

// ---- Text primitives ---------------------------------------------------------
// std::to_chars: locale-independent, and the shortest form that reads back
// exactly, which both Go's and Python's parsers accept.

void append_uint(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_int(std::string& out, std::int64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_double(std::string& out, double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Nanoseconds as decimal seconds, exactly: a double would round a
// CLOCK_REALTIME timestamp to about 0.2 µs.
void append_seconds(std::string& out, std::uint64_t ns) {
  append_uint(out, ns / 1'000'000'000u);
  std::uint64_t fraction = ns % 1'000'000'000u;
  if (fraction == 0) return;
  char digits[9];
  for (int i = 8; i >= 0; --i, fraction /= 10) digits[i] = static_cast<char>('0' + fraction % 10);
  std::size_t length = 9;
  while (digits[length - 1] == '0') --length;
  out += '.';
  out.append(digits, length);
}

constexpr std::string_view replacement_character = "\xEF\xBF\xBD";

// A label value between double quotes: the exposition formats escape only
// backslash, double quote and line feed.
void append_label_value(std::string& out, std::string_view value) {
  out += '"';
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t n = utf8_length(value, i);
    if (n == 0) {
      out += replacement_character;
      ++i;
      continue;
    }
    const char c = value[i];
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.append(value.substr(i, n));
    }
    i += n;
  }
  out += '"';
}

void append_json_string(std::string& out, std::string_view value) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t n = utf8_length(value, i);
    if (n == 0) {
      out += replacement_character;
      ++i;
      continue;
    }
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out.append(value.substr(i, n));
    }
    i += n;
  }
  out += '"';
}

std::uint64_t uptime_ns(const ScoreboardSnapshot& snap) {
  return snap.taken_ns > snap.started_ns ? snap.taken_ns - snap.started_ns : 0;
}

// Queue depth and limit mean something only for sockets that listen().
bool has_accept_queue(Protocol protocol) { return protocol != Protocol::datagram; }

// A snapshot's histograms are never null by contract; this keeps a
// hand-made snapshot (or a future reader) from crashing the exposition.
const Histogram& histogram_or_empty(const std::shared_ptr<const Histogram>& h) {
  static const auto empty = [] {
    auto e = std::make_unique<Histogram>();
    e->reset();
    return e;
  }();
  return h ? *h : *empty;
}

// ---- OpenMetrics and Prometheus text ------------------------------------------

// Request duration buckets. `le` is the OpenMetrics canonical spelling (Go's
// %g, with ".0" added to whole numbers), used in both formats so a series
// keeps its identity whichever format Prometheus negotiates.
struct Bucket {
  std::uint64_t ns;
  std::string_view le;
};
constexpr Bucket duration_buckets[] = {
    {1'000, "1e-06"},         {2'500, "2.5e-06"},     {5'000, "5e-06"},
    {10'000, "1e-05"},        {25'000, "2.5e-05"},    {50'000, "5e-05"},
    {100'000, "0.0001"},      {250'000, "0.00025"},   {500'000, "0.0005"},
    {1'000'000, "0.001"},     {2'500'000, "0.0025"},  {5'000'000, "0.005"},
    {10'000'000, "0.01"},     {25'000'000, "0.025"},  {50'000'000, "0.05"},
    {100'000'000, "0.1"},     {250'000'000, "0.25"},  {500'000'000, "0.5"},
    {1'000'000'000, "1.0"},   {2'500'000'000, "2.5"}, {5'000'000'000, "5.0"},
    {10'000'000'000, "10.0"},
};

enum class Type { gauge, counter, histogram };

struct Label {
  std::string_view name, value;
};
using Labels = std::initializer_list<Label>;

// Writes one family at a time. Its metadata goes out with its first sample,
// so a family with no samples (no TCP listener, no slot) leaves no trace.
class MetricsWriter {
 public:
  explicit MetricsWriter(MetricsFormat format)
      : openmetrics_(format == MetricsFormat::openmetrics) {
    out_.reserve(64 * 1024);
  }

  // `name` is the OpenMetrics family name: for a counter, without `_total`.
  // `unit` must be the name's last component (OpenMetrics checks it).
  void family(std::string_view name, Type type, std::string_view unit, std::string_view help) {
    name_ = name;
    type_ = type;
    unit_ = unit;
    help_ = help;
    announced_ = false;
  }

  void value(Labels labels, std::uint64_t value) {
    sample(type_ == Type::counter ? "_total" : "", labels, value);
  }

  void seconds(Labels labels, std::uint64_t ns) {
    begin("", labels);
    append_seconds(out_, ns);
    out_ += '\n';
  }

  // Cumulative buckets, then _count and _sum, as both formats want them.
  void histogram(Labels labels, const Histogram& h) {
    const std::uint64_t count = h.count(), max = h.max();
    for (const Bucket& bucket : duration_buckets) {
      // count_at_most() scans every bucket up to the bound (up to ~25,000);
      // at or above max() it would find them all anyway.
      const std::uint64_t n = count == 0         ? 0
                              : bucket.ns >= max ? count
                                                 : h.count_at_most(bucket.ns);
      const Label le{"le", bucket.le};
      sample("_bucket", labels, n, &le);
    }
    const Label infinity{"le", "+Inf"};
    sample("_bucket", labels, count, &infinity);
    sample("_count", labels, count);
    begin("_sum", labels);
    append_seconds(out_, h.sum());
    out_ += '\n';
  }

  std::string finish() {
    if (openmetrics_) out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  void announce() {
    // 0.0.4 has no UNIT line, and Prometheus 2.42's parser wants a counter's
    // metadata on the sample name itself.
    const std::string_view suffix = !openmetrics_ && type_ == Type::counter ? "_total" : "";
    const std::string_view type = type_ == Type::counter ? "counter"
                                  : type_ == Type::gauge ? "gauge"
                                                         : "histogram";
    // HELP texts are our own constants, free of the backslashes and line
    // feeds that would need escaping.
    auto line = [&](std::string_view keyword, std::string_view text) {
      out_ += "# ";
      out_ += keyword;
      out_ += ' ';
      out_ += name_;
      out_ += suffix;
      out_ += ' ';
      out_ += text;
      out_ += '\n';
    };
    if (openmetrics_) {
      line("TYPE", type);
      if (!unit_.empty()) line("UNIT", unit_);
      line("HELP", help_);
    } else {
      line("HELP", help_);
      line("TYPE", type);
    }
    announced_ = true;
  }

  void sample(std::string_view suffix, Labels labels, std::uint64_t value,
              const Label* extra = nullptr) {
    begin(suffix, labels, extra);
    append_uint(out_, value);
    out_ += '\n';
  }

  void begin(std::string_view suffix, Labels labels, const Label* extra = nullptr) {
    if (!announced_) announce();
    out_ += name_;
    out_ += suffix;
    if (labels.size() == 0 && extra == nullptr) {
      out_ += ' ';
      return;
    }
    char separator = '{';
    auto label = [&](const Label& l) {
      out_ += separator;
      out_ += l.name;
      out_ += '=';
      append_label_value(out_, l.value);
      separator = ',';
    };
    for (const Label& l : labels) label(l);
    if (extra != nullptr) label(*extra);
    out_ += "} ";
  }

  bool openmetrics_;
  std::string out_;
  std::string_view name_, unit_, help_;
  Type type_ = Type::gauge;
  bool announced_ = false;
};

// A source of counters: a live slot, or the retired workers.
struct CounterSource {
  std::string slot;
  const CounterValues* counters;
  const Histogram* latency;
};

// A per-listener counter family and the slot-wide figure it adds up to.
struct ListenerCounter {
  std::string_view name, unit, help;
  std::uint64_t ListenerValues::*per_listener;
  std::uint64_t CounterValues::*whole;
  bool accept_queue_only;  // a count that stays 0 on UDP listeners
};

constexpr ListenerCounter listener_counters[] = {
    {"prefork_requests", "",
     "Requests counted when their handler starts (datagrams, chunks or frames).",
     &ListenerValues::requests, &CounterValues::requests, false},
    {"prefork_errors", "", "Failed requests and connections; see prefork_errors_by_kind.",
     &ListenerValues::errors, &CounterValues::errors, false},
    {"prefork_accepted_connections", "", "Connections accepted.", &ListenerValues::connections,
     &CounterValues::connections_total, true},
    {"prefork_received_bytes", "bytes", "Bytes read from clients.", &ListenerValues::bytes_in,
     &CounterValues::bytes_in, false},
    {"prefork_sent_bytes", "bytes", "Bytes written to clients.", &ListenerValues::bytes_out,
     &CounterValues::bytes_out, false},
};

void render_master(MetricsWriter& w, const ScoreboardSnapshot& snap) {
  w.family("prefork_master_start_time_seconds", Type::gauge, "seconds",
           "When the master started, in seconds since the Unix epoch.");
  w.seconds({}, snap.started_ns);
  w.family("prefork_master_uptime_seconds", Type::gauge, "seconds",
           "Seconds since the master started, when this exposition was taken.");
  w.seconds({}, uptime_ns(snap));
  w.family("prefork_master_generation", Type::gauge, "",
           "Workers started by this master so far, replacements included.");
  w.value({}, snap.generation);
  w.family("prefork_worker_restarts", Type::counter, "",
           "Workers started in a slot that had one before.");
  w.value({}, snap.worker_restarts);
  w.family("prefork_worker_exits", Type::counter, "",
           "Workers that ended after they were ready, by cause: crash (non-zero exit status), "
           "signal (killed by one), recycled (exited cleanly) or timeout (silent past "
           "--timeout, killed by the master).");
  w.value({{"cause", "crash"}}, snap.exits_crashed);
  w.value({{"cause", "signal"}}, snap.exits_signaled);
  w.value({{"cause", "recycled"}}, snap.exits_recycled);
  w.value({{"cause", "timeout"}}, snap.exits_timed_out);
  w.family("prefork_worker_start_failures", Type::counter, "",
           "Workers that died, or missed --start-timeout, before they were ready.");
  w.value({}, snap.start_failures);
  w.family("prefork_scoreboard_corrupt", Type::gauge, "",
           "1 when the scoreboard was found scribbled over (/stats.json says how): the "
           "figures shown were bounded, not trusted; 0 otherwise.");
  w.value({}, std::uint64_t{snap.corrupt.empty() ? 0u : 1u});

  w.family("prefork_listen_queue_depth", Type::gauge, "",
           "Connections waiting in the listening socket's accept queue (TCP listeners).");
  for (const ListenerInfo& l : snap.listeners)
    if (has_accept_queue(l.protocol)) w.value({{"listener", l.name}}, l.queue_depth);
  w.family("prefork_listen_queue_limit", Type::gauge, "",
           "The accept queue's capacity (the listen backlog) of each TCP listener.");
  for (const ListenerInfo& l : snap.listeners)
    if (has_accept_queue(l.protocol)) w.value({{"listener", l.name}}, l.queue_limit);
}

// Identity gauges only for occupied slots: an empty slot's pid and times
// are zeros, not facts; its worker_state{state="empty"} says it is empty.
void render_slots(MetricsWriter& w, const ScoreboardSnapshot& snap,
                  const std::vector<CounterSource>& sources) {
  static constexpr WorkerState states[] = {WorkerState::empty, WorkerState::starting,
                                           WorkerState::ready, WorkerState::stopping};
  w.family("prefork_worker_state", Type::gauge, "",
           "1 for the state the slot's worker is in, 0 for the others.");
  for (std::size_t i = 0; i < snap.slots.size(); ++i)
    for (WorkerState state : states)
      w.value({{"slot", sources[i].slot}, {"state", worker_state_name(state)}},
              snap.slots[i].state == state ? 1 : 0);

  // Calls `emit(slot label, slot)` for each occupied slot.
  auto occupied = [&](auto emit) {
    for (std::size_t i = 0; i < snap.slots.size(); ++i)
      if (snap.slots[i].pid != 0) emit(sources[i].slot, snap.slots[i]);
  };
  w.family("prefork_worker_pid", Type::gauge, "", "Process id of the slot's worker.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, static_cast<std::uint64_t>(s.pid));
  });
  w.family("prefork_worker_generation", Type::gauge, "",
           "How many workers this slot has started, the current one included.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, s.generation);
  });
  w.family("prefork_worker_start_time_seconds", Type::gauge, "seconds",
           "When the slot's worker started, in seconds since the Unix epoch.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    if (s.started_ns != 0) w.seconds({{"slot", slot}}, s.started_ns);
  });
  w.family("prefork_worker_heartbeat_time_seconds", Type::gauge, "seconds",
           "The worker's last heartbeat (about once a second), in seconds since the Unix epoch.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    if (s.heartbeat_ns != 0) w.seconds({{"slot", slot}}, s.heartbeat_ns);
  });
  w.family("prefork_worker_resident_memory_bytes", Type::gauge, "bytes",
           "The worker's resident set size, updated with its heartbeat.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, s.rss_bytes);
  });
  w.family("prefork_worker_active_connections", Type::gauge, "",
           "Connections the worker has open.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, s.connections_active);
  });
  w.family("prefork_worker_max_connections", Type::gauge, "",
           "The most connections the worker holds open (--max-connections, or its pool): at it, "
           "it accepts no more until one closes.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, s.connections_max);
  });
  w.family("prefork_workers_at_connection_cap", Type::gauge, "",
           "Workers holding as many connections as their cap: new connections wait in the "
           "listen queue for them or another worker.");
  std::uint64_t at_cap = 0;
  for (const SlotSnapshot& s : snap.slots) at_cap += at_connection_cap(s) ? 1 : 0;
  w.value({}, at_cap);
  w.family("prefork_worker_waiting_threads", Type::gauge, "",
           "Threads of the worker asleep in accept() or recvmsg() waiting for work; its "
           "heartbeat is not expected to move while it waits.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, static_cast<std::uint64_t>(s.waiting));
  });
  w.family("prefork_worker_counters_stale", Type::gauge, "",
           "1 when the worker stayed inside a counter update for the whole read (stopped or "
           "died there): its counters are the last whole copy.");
  occupied([&](const std::string& slot, const SlotSnapshot& s) {
    w.value({{"slot", slot}}, s.stale ? 1 : 0);
  });
}

void render_counters(MetricsWriter& w, const ScoreboardSnapshot& snap,
                     const std::vector<CounterSource>& sources) {
  for (const ListenerCounter& c : listener_counters) {
    w.family(c.name, Type::counter, c.unit, c.help);
    for (const CounterSource& source : sources) {
      const CounterValues& values = *source.counters;
      // A scoreboard made without listeners still counts, slot-wide.
      if (snap.listeners.empty()) {
        w.value({{"slot", source.slot}}, values.*c.whole);
        continue;
      }
      const std::size_t n = std::min(snap.listeners.size(), values.listeners.size());
      for (std::size_t i = 0; i < n; ++i) {
        if (c.accept_queue_only && !has_accept_queue(snap.listeners[i].protocol)) continue;
        w.value({{"slot", source.slot}, {"listener", snap.listeners[i].name}},
                values.listeners[i].*c.per_listener);
      }
    }
  }
  w.family("prefork_errors_by_kind", Type::counter, "",
           "prefork_errors by kind: oversized_frame, truncated_datagram, peer_reset, "
           "handler_exception, other.");
  for (const CounterSource& source : sources)
    for (unsigned k = 0; k < error_kind_count; ++k)
      w.value({{"slot", source.slot}, {"kind", error_kind_name(static_cast<ErrorKind>(k))}},
              source.counters->error_kinds[k]);

  w.family("prefork_connections_closed", Type::counter, "",
           "TCP connections ended, by reason: peer_closed, peer_reset, timeout, handler_closed, "
           "handler_aborted, handler_failed, worker_stopping, limit_exceeded.");
  for (const CounterSource& source : sources)
    for (unsigned r = 0; r < close_reason_count; ++r)
      w.value({{"slot", source.slot}, {"reason", close_reason_name(static_cast<CloseReason>(r))}},
              source.counters->closes[r]);

  w.family("prefork_request_duration_seconds", Type::histogram, "seconds",
           "Handler plus reply write time of each request.");
  for (const CounterSource& source : sources) w.histogram({{"slot", source.slot}}, *source.latency);
}

// ---- JSON -------------------------------------------------------------------------

// Keeps the commas right; an empty key means an array element.
class JsonWriter {
 public:
  JsonWriter() { out_.reserve(8 * 1024); }

  void begin_object(std::string_view key = {}) {
    prefix(key);
    out_ += '{';
    first_ = true;
  }
  void end_object() {
    out_ += '}';
    first_ = false;
  }
  void begin_array(std::string_view key) {
    prefix(key);
    out_ += '[';
    first_ = true;
  }
  void end_array() {
    out_ += ']';
    first_ = false;
  }
  void number(std::string_view key, std::uint64_t value) {
    prefix(key);
    append_uint(out_, value);
  }
  void number(std::string_view key, std::int64_t value) {
    prefix(key);
    append_int(out_, value);
  }
  void number(std::string_view key, double value) {
    prefix(key);
    append_double(out_, value);
  }
  void seconds(std::string_view key, std::uint64_t ns) {
    prefix(key);
    append_seconds(out_, ns);
  }
  void string(std::string_view key, std::string_view value) {
    prefix(key);
    append_json_string(out_, value);
  }
  void boolean(std::string_view key, bool value) {
    prefix(key);
    out_ += value ? "true" : "false";
  }
  void null(std::string_view key) {
    prefix(key);
    out_ += "null";
  }

  std::string finish() { return std::move(out_); }

 private:
  void prefix(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    if (key.empty()) return;
    append_json_string(out_, key);
    out_ += ':';
  }

  std::string out_;
  bool first_ = true;
};

void json_latency(JsonWriter& j, const Histogram& h) {
  j.begin_object("latency_ns");
  j.number("count", h.count());
  j.number("sum", h.sum());
  j.number("min", h.min());
  j.number("mean", h.mean());
  j.number("p50", h.percentile(50));
  j.number("p90", h.percentile(90));
  j.number("p99", h.percentile(99));
  j.number("p999", h.percentile(99.9));
  j.number("max", h.max());
  j.end_object();
}

// The counter fields shared by workers, retired and totals, inside an
// object the caller has opened.
void json_counters(JsonWriter& j, const CounterValues& c, const Histogram& latency) {
  j.number("requests", c.requests);
  j.number("bytes_in", c.bytes_in);
  j.number("bytes_out", c.bytes_out);
  j.number("connections_total", c.connections_total);
  j.number("errors", c.errors);
  j.begin_object("error_kinds");
  for (unsigned k = 0; k < error_kind_count; ++k)
    j.number(error_kind_name(static_cast<ErrorKind>(k)), c.error_kinds[k]);
  j.end_object();
  j.begin_object("closes");
  for (unsigned r = 0; r < close_reason_count; ++r)
    j.number(close_reason_name(static_cast<CloseReason>(r)), c.closes[r]);
  j.end_object();
  j.begin_array("listeners");
  for (const ListenerValues& l : c.listeners) {
    j.begin_object();
    j.number("requests", l.requests);
    j.number("errors", l.errors);
    j.number("connections", l.connections);
    j.number("bytes_in", l.bytes_in);
    j.number("bytes_out", l.bytes_out);
    j.end_object();
  }
  j.end_array();
  json_latency(j, latency);
}

}  // namespace

std::string_view metrics_content_type(MetricsFormat format) noexcept {
  return format == MetricsFormat::openmetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

std::string render_metrics(const ScoreboardSnapshot& snapshot, MetricsFormat format) {
  std::vector<CounterSource> sources;
  sources.reserve(snapshot.slots.size() + 1);
  for (const SlotSnapshot& s : snapshot.slots)
    sources.push_back({std::to_string(s.slot), &s.counters, &histogram_or_empty(s.latency)});
  sources.push_back({"retired", &snapshot.retired, &histogram_or_empty(snapshot.retired_latency)});

  MetricsWriter w(format);
  render_master(w, snapshot);
  render_slots(w, snapshot, sources);
  render_counters(w, snapshot, sources);
  return w.finish();
}

std::string render_json(const ScoreboardSnapshot& snapshot, std::string_view name) {
  JsonWriter j;
  j.begin_object();
  j.string("name", name);
  j.number("master_pid", static_cast<std::int64_t>(snapshot.master_pid));
  j.number("started_ns", snapshot.started_ns);
  j.number("taken_ns", snapshot.taken_ns);
  j.seconds("uptime_s", uptime_ns(snapshot));
  j.number("generation", snapshot.generation);
  j.number("worker_restarts", snapshot.worker_restarts);
  j.begin_object("exits");
  j.number("crashed", snapshot.exits_crashed);
  j.number("signaled", snapshot.exits_signaled);
  j.number("recycled", snapshot.exits_recycled);
  j.number("timed_out", snapshot.exits_timed_out);
  j.end_object();
  j.number("start_failures", snapshot.start_failures);
  if (snapshot.corrupt.empty())
    j.null("corrupt");
  else
    j.string("corrupt", snapshot.corrupt);

  j.begin_array("listeners");
  for (const ListenerInfo& l : snapshot.listeners) {
    j.begin_object();
    j.string("name", l.name);
    j.string("protocol", protocol_name(l.protocol));
    if (has_accept_queue(l.protocol)) {
      j.number("queue_depth", std::uint64_t{l.queue_depth});
      j.number("queue_limit", std::uint64_t{l.queue_limit});
    } else {
      j.null("queue_depth");
      j.null("queue_limit");
    }
    j.end_object();
  }
  j.end_array();

  j.begin_array("workers");
  for (const SlotSnapshot& s : snapshot.slots) {
    j.begin_object();
    j.number("slot", std::uint64_t{s.slot});
    j.number("pid", static_cast<std::int64_t>(s.pid));
    j.string("state", worker_state_name(s.state));
    j.number("generation", s.generation);
    j.number("started_ns", s.started_ns);
    j.number("heartbeat_ns", s.heartbeat_ns);
    j.number("rss_bytes", s.rss_bytes);
    j.number("waiting", static_cast<std::uint64_t>(s.waiting));
    j.number("connections_active", s.connections_active);
    j.number("connections_max", s.connections_max);
    j.boolean("at_connection_cap", at_connection_cap(s));
    j.boolean("stale", s.stale);
    json_counters(j, s.counters, histogram_or_empty(s.latency));
    j.end_object();
  }
  j.end_array();

  j.begin_object("retired");
  json_counters(j, snapshot.retired, histogram_or_empty(snapshot.retired_latency));
  j.end_object();

  j.begin_object("totals");
  j.number("worker_restarts", snapshot.worker_restarts);
  json_counters(j, snapshot.totals, histogram_or_empty(snapshot.latency));
  j.end_object();
  j.end_object();
  return j.finish();
}

}  // namespace prefork
