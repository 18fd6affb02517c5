// The scoreboard's text exposition (framework/src/exposition.cpp) read back
// field by field from a real segment: OpenMetrics and Prometheus 0.0.4 by a
// small parser of our own, JSON with Boost.JSON. check_exposition.sh runs
// the disabled case `write_samples` to feed promtool and Python's strict
// OpenMetrics parser.
#define BOOST_TEST_MODULE exposition
#include <boost/test/unit_test.hpp>

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/exposition.hpp>
#include <prefork/listener.hpp>

#include <unistd.h>

#include <boost/interprocess/shared_memory_object.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace json = boost::json;
using namespace prefork;

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

// Per-pid names, so parallel runs never collide; removed however the test ends.
struct ShmName {
  std::string name;
  ShmName() {
    static int counter = 0;
    name = "prefork_expo_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  ~ShmName() { boost::interprocess::shared_memory_object::remove(name.c_str()); }
};

// What the test put into one counter source: a slot, or "retired".
struct Expected {
  std::vector<ListenerValues> listeners = std::vector<ListenerValues>(3);
  std::array<std::uint64_t, error_kind_count> kinds{};
  std::array<std::uint64_t, close_reason_count> closes{};
  std::vector<std::uint64_t> latencies_ns;

  std::uint64_t total(std::uint64_t ListenerValues::*field) const {
    std::uint64_t sum = 0;
    for (const ListenerValues& l : listeners) sum += l.*field;
    return sum;
  }
};

void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n) { counter.fetch_add(n, relaxed); }

// Counts as a worker does: per listener and slot-wide.
void serve(Counters& c, Expected& e, unsigned listener, const ListenerValues& v) {
  ListenerCounters& l = c.listeners[listener];
  bump(l.requests, v.requests);
  bump(l.connections, v.connections);
  bump(l.bytes_in, v.bytes_in);
  bump(l.bytes_out, v.bytes_out);
  bump(c.requests, v.requests);
  bump(c.connections_total, v.connections);
  bump(c.bytes_in, v.bytes_in);
  bump(c.bytes_out, v.bytes_out);
  ListenerValues& x = e.listeners[listener];
  x.requests += v.requests;
  x.connections += v.connections;
  x.bytes_in += v.bytes_in;
  x.bytes_out += v.bytes_out;
}

void fail(Counters& c, Expected& e, unsigned listener, ErrorKind kind, std::uint64_t n) {
  const auto k = static_cast<unsigned>(kind);
  bump(c.listeners[listener].errors, n);
  bump(c.errors, n);
  bump(c.error_kinds[k], n);
  e.listeners[listener].errors += n;
  e.kinds[k] += n;
}

void closed(Counters& c, Expected& e, CloseReason reason, std::uint64_t n) {
  const auto r = static_cast<unsigned>(reason);
  bump(c.closes[r], n);
  e.closes[r] += n;
}

void record(SharedHistogram& h, Expected& e, std::initializer_list<std::uint64_t> values_ns) {
  for (std::uint64_t v : values_ns) {
    h.record(v);
    e.latencies_ns.push_back(v);
  }
}

constexpr std::uint64_t slot0_started_ns = 1'700'000'000'123'456'789;
constexpr std::uint64_t slot0_heartbeat_ns = 1'700'000'100'500'000'000;
constexpr std::uint64_t slot1_started_ns = 1'700'000'050'000'000'000;

// A master with three listeners (tcp, framed, udp) and three slots: slot 0
// serving, slot 1 on its second worker (the first one retired), slot 2 empty.
struct Scenario {
  ShmName shm;
  std::vector<Listener> listeners;
  std::optional<Scoreboard> board;
  std::map<std::string, Expected> expected;  // by slot label
  ScoreboardSnapshot snap;

  Scenario() {
    const Address any = Address::parse("127.0.0.1:0");
    listeners = open_listeners(
        {{Protocol::stream, any}, {Protocol::framed, any}, {Protocol::datagram, any}});
    board.emplace(Scoreboard::create(shm.name, 3, listeners));
    Header& h = board->header();
    h.generation = 7;
    h.worker_restarts = 4;
    h.exits_crashed = 1;
    h.exits_signaled = 2;
    h.exits_recycled = 3;
    h.exits_timed_out = 5;
    h.start_failures = 6;
    board->publish_queue(0, 5, 128);
    board->publish_queue(1, 0, 64);
    board->publish_queue(2, 9, 9);  // a UDP socket has no accept queue: not shown

    // The first worker of slot 1, then its death.
    Slot& first = board->slot(1);
    first.pid = 999;
    first.state = WorkerState::ready;
    Expected& retired = expected["retired"];
    serve(first.counters, retired, 0, {11, 0, 2, 110, 220});
    serve(first.counters, retired, 2, {5, 0, 0, 50, 50});
    fail(first.counters, retired, 0, ErrorKind::peer_reset, 2);
    fail(first.counters, retired, 2, ErrorKind::truncated_datagram, 1);
    closed(first.counters, retired, CloseReason::peer_reset, 2);
    record(first.latency, retired, {4'000, 30'000'000});
    board->retire(1);

    Slot& s0 = board->slot(0);
    s0.pid = 1001;
    s0.state = WorkerState::ready;
    s0.generation = 2;
    s0.started_ns = slot0_started_ns;
    s0.heartbeat_ns = slot0_heartbeat_ns;
    s0.rss_bytes = 4'321'000;
    s0.waiting.store(1);
    s0.connections_active = 3;
    s0.connections_max = 3;  // at its cap
    Expected& e0 = expected["0"];
    serve(s0.counters, e0, 0, {100, 0, 10, 1000, 2000});
    serve(s0.counters, e0, 1, {40, 0, 4, 400, 800});
    serve(s0.counters, e0, 2, {7, 0, 0, 70, 7});
    fail(s0.counters, e0, 1, ErrorKind::oversized_frame, 1);
    fail(s0.counters, e0, 0, ErrorKind::handler_exception, 3);
    fail(s0.counters, e0, 0, ErrorKind::other, 1);
    closed(s0.counters, e0, CloseReason::peer_closed, 4);
    closed(s0.counters, e0, CloseReason::handler_closed, 1);
    closed(s0.counters, e0, CloseReason::limit_exceeded, 1);
    // 1000 ns sits exactly on the first bound; 20 s lies past the last one.
    record(s0.latency, e0, {500, 1'000, 3'000, 75'000, 2'000'000, 20'000'000'000});

    Slot& s1 = board->slot(1);
    s1.pid = 1002;
    s1.state = WorkerState::starting;
    s1.generation = 3;
    s1.started_ns = slot1_started_ns;  // no heartbeat yet
    s1.connections_max = 8;
    Expected& e1 = expected["1"];
    serve(s1.counters, e1, 1, {1, 0, 1, 8, 8});
    record(s1.latency, e1, {800});

    expected["2"];  // empty
    snap = ScoreboardReader::open(shm.name).snapshot();
  }

  std::string listener_name(unsigned i) const {
    static constexpr const char* protocols[] = {"tcp", "framed", "udp"};
    return std::string(protocols[i]) + " " + listeners[i].local.to_string();
  }
};

// ---- A parser for both text formats --------------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

struct Family {
  std::string type, unit, help;
  int type_lines = 0, unit_lines = 0, help_lines = 0;
  std::vector<Sample> samples;
};

struct Parsed {
  std::vector<std::string> order;  // family names as they appear
  std::map<std::string, Family> families;
  std::vector<std::string> sample_lines;
  bool eof = false;
};

// The sample names a family of `type` may hold in each format.
bool belongs(const std::string& family, const std::string& type, const std::string& sample,
             bool openmetrics) {
  if (type == "counter") return sample == (openmetrics ? family + "_total" : family);
  if (type == "histogram")
    return sample == family + "_bucket" || sample == family + "_count" || sample == family + "_sum";
  return sample == family;
}

// Strict enough for our output: no timestamps, no exemplars, one space.
Sample parse_sample(const std::string& line) {
  Sample s;
  std::size_t i = line.find_first_of("{ ");
  BOOST_REQUIRE_MESSAGE(i != std::string::npos, "no value: " << line);
  s.name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (line.at(i) != '}') {
      const std::size_t eq = line.find('=', i);
      BOOST_REQUIRE_MESSAGE(eq != std::string::npos && line.at(eq + 1) == '"', "label: " << line);
      const std::string name = line.substr(i, eq - i);
      std::string value;
      for (i = eq + 2; line.at(i) != '"'; ++i) {
        if (line[i] != '\\') {
          value += line[i];
          continue;
        }
        const char escaped = line.at(++i);
        BOOST_REQUIRE_MESSAGE(escaped == '\\' || escaped == '"' || escaped == 'n',
                              "escape: " << line);
        value += escaped == 'n' ? '\n' : escaped;
      }
      BOOST_REQUIRE_MESSAGE(s.labels.emplace(name, value).second, "duplicate label: " << line);
      ++i;
      if (line.at(i) == ',') ++i;
    }
    ++i;
  }
  BOOST_REQUIRE_MESSAGE(line.at(i) == ' ', "separator: " << line);
  s.value = line.substr(i + 1);
  BOOST_REQUIRE_MESSAGE(!s.value.empty() && s.value.find(' ') == std::string::npos,
                        "value: " << line);
  return s;
}

Parsed parse(const std::string& text, bool openmetrics) {
  Parsed p;
  BOOST_REQUIRE(!text.empty() && text.back() == '\n');
  std::istringstream in(text);
  std::string line, current;
  while (std::getline(in, line)) {
    BOOST_REQUIRE_MESSAGE(!p.eof, "line after # EOF: " << line);
    BOOST_REQUIRE_MESSAGE(!line.empty(), "blank line");
    if (line == "# EOF") {
      p.eof = true;
      continue;
    }
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      std::string rest;
      std::getline(words, rest);
      BOOST_REQUIRE_MESSAGE(rest.size() > 1 && rest[0] == ' ', "metadata: " << line);
      rest.erase(0, 1);
      if (name != current) {
        BOOST_REQUIRE_MESSAGE(!p.families.count(name), "family split: " << line);
        p.order.push_back(name);
        current = name;
      }
      Family& f = p.families[name];
      BOOST_REQUIRE_MESSAGE(f.samples.empty(), "metadata after samples: " << line);
      if (keyword == "TYPE") {
        f.type = rest;
        ++f.type_lines;
      } else if (keyword == "UNIT") {
        f.unit = rest;
        ++f.unit_lines;
      } else if (keyword == "HELP") {
        f.help = rest;
        ++f.help_lines;
      } else {
        BOOST_FAIL("unknown metadata: " << line);
      }
      continue;
    }
    Sample s = parse_sample(line);
    BOOST_REQUIRE_MESSAGE(!current.empty(), "sample before metadata: " << line);
    Family& f = p.families[current];
    BOOST_REQUIRE_MESSAGE(belongs(current, f.type, s.name, openmetrics),
                          "sample outside its family " << current << ": " << line);
    f.samples.push_back(std::move(s));
    p.sample_lines.push_back(line);
  }
  return p;
}

using LabelSet = std::map<std::string, std::string>;

// The one sample of `family` named `name` with exactly `labels`.
const Sample* find(const Parsed& p, const std::string& family, const std::string& name,
                   const LabelSet& labels) {
  const auto f = p.families.find(family);
  if (f == p.families.end()) return nullptr;
  const Sample* found = nullptr;
  for (const Sample& s : f->second.samples) {
    if (s.name != name || s.labels != labels) continue;
    BOOST_TEST(found == nullptr, "duplicate series " << name);
    found = &s;
  }
  return found;
}

std::string value_of(const Parsed& p, const std::string& family, const std::string& name,
                     const LabelSet& labels) {
  const Sample* s = find(p, family, name, labels);
  return s ? s->value : "(missing)";
}

std::size_t sample_count(const Parsed& p, const std::string& family) {
  const auto f = p.families.find(family);
  return f == p.families.end() ? 0 : f->second.samples.size();
}

// The family, its type, its unit ("" for none), and its number of samples
// in the scenario.
struct FamilySpec {
  std::string name, type, unit;
  std::size_t samples;
};

// 4 counter sources (slots 0-2 and "retired"), 3 listeners (2 TCP), 3 slots
// (2 occupied, 1 with a heartbeat), 22 finite buckets.
const std::vector<FamilySpec> scenario_families = {
    {"prefork_master_start_time_seconds", "gauge", "seconds", 1},
    {"prefork_master_uptime_seconds", "gauge", "seconds", 1},
    {"prefork_master_generation", "gauge", "", 1},
    {"prefork_worker_restarts", "counter", "", 1},
    {"prefork_worker_exits", "counter", "", 4},
    {"prefork_worker_start_failures", "counter", "", 1},
    {"prefork_scoreboard_corrupt", "gauge", "", 1},
    {"prefork_listen_queue_depth", "gauge", "", 2},
    {"prefork_listen_queue_limit", "gauge", "", 2},
    {"prefork_worker_state", "gauge", "", 3 * 4},
    {"prefork_worker_pid", "gauge", "", 2},
    {"prefork_worker_generation", "gauge", "", 2},
    {"prefork_worker_start_time_seconds", "gauge", "seconds", 2},
    {"prefork_worker_heartbeat_time_seconds", "gauge", "seconds", 1},
    {"prefork_worker_resident_memory_bytes", "gauge", "bytes", 2},
    {"prefork_worker_active_connections", "gauge", "", 2},
    {"prefork_worker_max_connections", "gauge", "", 2},
    {"prefork_workers_at_connection_cap", "gauge", "", 1},
    {"prefork_worker_waiting_threads", "gauge", "", 2},
    {"prefork_worker_counters_stale", "gauge", "", 2},
    {"prefork_requests", "counter", "", 4 * 3},
    {"prefork_errors", "counter", "", 4 * 3},
    {"prefork_accepted_connections", "counter", "", 4 * 2},
    {"prefork_received_bytes", "counter", "bytes", 4 * 3},
    {"prefork_sent_bytes", "counter", "bytes", 4 * 3},
    {"prefork_errors_by_kind", "counter", "", 4 * error_kind_count},
    {"prefork_connections_closed", "counter", "", 4 * close_reason_count},
    {"prefork_request_duration_seconds", "histogram", "seconds", 4 * (22 + 1 + 2)},
};

const std::vector<std::string> slot_labels = {"0", "1", "2", "retired"};

double number(const std::string& text) {
  std::size_t used = 0;
  const double v = std::stod(text, &used);
  BOOST_TEST(used == text.size(), "not a whole number: " << text);
  return v;
}

// Exact decimal seconds, as promised: "12.5", "3", "0.000001".
std::string seconds_text(std::uint64_t ns) {
  char text[40];
  std::snprintf(text, sizeof text, "%llu.%09llu",
                static_cast<unsigned long long>(ns / 1'000'000'000),
                static_cast<unsigned long long>(ns % 1'000'000'000));
  std::string out = text;
  out.erase(out.find_last_not_of('0') + 1);
  if (out.back() == '.') out.pop_back();
  return out;
}

std::uint64_t count_of(const std::string& text) {
  BOOST_TEST(text.find_first_not_of("0123456789") == std::string::npos, "not a count: " << text);
  return std::strtoull(text.c_str(), nullptr, 10);
}

// Sample names as the OpenMetrics text has them.
std::string sample_name(const FamilySpec& f) {
  return f.type == "counter" ? f.name + "_total" : f.name;
}

// Every family of the scenario, by the OpenMetrics family name.
void check_families(const Parsed& p, bool openmetrics) {
  std::vector<std::string> expected_order;
  for (const FamilySpec& spec : scenario_families) {
    const std::string name = openmetrics ? spec.name : sample_name(spec);
    expected_order.push_back(name);
    BOOST_TEST_CONTEXT("family " << name) {
      BOOST_REQUIRE(p.families.count(name) == 1u);
      const Family& f = p.families.at(name);
      BOOST_TEST(f.type == spec.type);
      BOOST_TEST(f.type_lines == 1);
      BOOST_TEST(f.help_lines == 1);
      BOOST_TEST(f.help.size() > 10u);
      BOOST_TEST(f.help.find_first_of("\\\n") == std::string::npos);
      BOOST_TEST(f.unit_lines == (openmetrics && !spec.unit.empty() ? 1 : 0));
      if (openmetrics) BOOST_TEST(f.unit == spec.unit);
      if (!spec.unit.empty()) {
        const std::string suffix = "_" + spec.unit;
        BOOST_TEST(spec.name.size() > suffix.size());
        BOOST_TEST(spec.name.compare(spec.name.size() - suffix.size(), suffix.size(), suffix) == 0);
      }
      BOOST_TEST(f.samples.size() == spec.samples);
    }
  }
  BOOST_TEST(p.order == expected_order, boost::test_tools::per_element());
}

// The master's and the workers' gauges and the per-listener counters.
void check_values(const Parsed& p, const Scenario& sc) {
  const ScoreboardSnapshot& snap = sc.snap;
  BOOST_TEST(value_of(p, "prefork_master_start_time_seconds", "prefork_master_start_time_seconds",
                      {}) == seconds_text(snap.started_ns));
  BOOST_TEST(number(value_of(p, "prefork_master_uptime_seconds", "prefork_master_uptime_seconds",
                             {})) == static_cast<double>(snap.taken_ns - snap.started_ns) / 1e9,
             boost::test_tools::tolerance(1e-9));
  BOOST_TEST(value_of(p, "prefork_master_generation", "prefork_master_generation", {}) == "7");
  BOOST_TEST(value_of(p, "prefork_worker_restarts", "prefork_worker_restarts_total", {}) == "4");
  BOOST_TEST(value_of(p, "prefork_worker_exits", "prefork_worker_exits_total",
                      {{"cause", "crash"}}) == "1");
  BOOST_TEST(value_of(p, "prefork_worker_exits", "prefork_worker_exits_total",
                      {{"cause", "signal"}}) == "2");
  BOOST_TEST(value_of(p, "prefork_worker_exits", "prefork_worker_exits_total",
                      {{"cause", "recycled"}}) == "3");
  BOOST_TEST(value_of(p, "prefork_worker_exits", "prefork_worker_exits_total",
                      {{"cause", "timeout"}}) == "5");
  BOOST_TEST(value_of(p, "prefork_worker_start_failures", "prefork_worker_start_failures_total",
                      {}) == "6");
  const std::string tcp = sc.listener_name(0), framed = sc.listener_name(1);
  BOOST_TEST(value_of(p, "prefork_listen_queue_depth", "prefork_listen_queue_depth",
                      {{"listener", tcp}}) == "5");
  BOOST_TEST(value_of(p, "prefork_listen_queue_limit", "prefork_listen_queue_limit",
                      {{"listener", tcp}}) == "128");
  BOOST_TEST(value_of(p, "prefork_listen_queue_depth", "prefork_listen_queue_depth",
                      {{"listener", framed}}) == "0");
  BOOST_TEST(value_of(p, "prefork_listen_queue_limit", "prefork_listen_queue_limit",
                      {{"listener", framed}}) == "64");

  const std::map<std::string, std::string> states = {
      {"0", "ready"}, {"1", "starting"}, {"2", "empty"}};
  for (const auto& [slot, current] : states)
    for (const char* state : {"empty", "starting", "ready", "stopping"})
      BOOST_TEST(value_of(p, "prefork_worker_state", "prefork_worker_state",
                          {{"slot", slot}, {"state", state}}) == (state == current ? "1" : "0"),
                 "slot " << slot << " state " << state);

  auto gauge = [&](const std::string& family, const std::string& slot) {
    return value_of(p, family, family, {{"slot", slot}});
  };
  BOOST_TEST(gauge("prefork_worker_pid", "0") == "1001");
  BOOST_TEST(gauge("prefork_worker_pid", "1") == "1002");
  BOOST_TEST(gauge("prefork_worker_generation", "0") == "2");
  BOOST_TEST(gauge("prefork_worker_generation", "1") == "3");
  BOOST_TEST(gauge("prefork_worker_start_time_seconds", "0") == "1700000000.123456789");
  BOOST_TEST(gauge("prefork_worker_start_time_seconds", "1") == "1700000050");
  BOOST_TEST(gauge("prefork_worker_heartbeat_time_seconds", "0") == "1700000100.5");
  BOOST_TEST(gauge("prefork_worker_resident_memory_bytes", "0") == "4321000");
  BOOST_TEST(gauge("prefork_worker_resident_memory_bytes", "1") == "0");
  BOOST_TEST(gauge("prefork_worker_active_connections", "0") == "3");
  BOOST_TEST(gauge("prefork_worker_active_connections", "1") == "0");
  BOOST_TEST(gauge("prefork_worker_max_connections", "0") == "3");
  BOOST_TEST(gauge("prefork_worker_max_connections", "1") == "8");
  BOOST_TEST(value_of(p, "prefork_workers_at_connection_cap", "prefork_workers_at_connection_cap",
                      {}) == "1");
  BOOST_TEST(gauge("prefork_worker_waiting_threads", "0") == "1");
  BOOST_TEST(gauge("prefork_worker_waiting_threads", "1") == "0");
  BOOST_TEST(gauge("prefork_worker_counters_stale", "0") == "0");
  BOOST_TEST(gauge("prefork_worker_counters_stale", "1") == "0");
  BOOST_TEST(gauge("prefork_worker_pid", "2") == "(missing)");  // empty slot: state only

  struct Field {
    std::string family;
    std::uint64_t ListenerValues::*member;
  };
  const Field fields[] = {{"prefork_requests", &ListenerValues::requests},
                          {"prefork_errors", &ListenerValues::errors},
                          {"prefork_accepted_connections", &ListenerValues::connections},
                          {"prefork_received_bytes", &ListenerValues::bytes_in},
                          {"prefork_sent_bytes", &ListenerValues::bytes_out}};
  for (const std::string& slot : slot_labels) {
    const Expected& e = sc.expected.at(slot);
    for (const Field& f : fields)
      for (unsigned i = 0; i < 3; ++i) {
        if (f.family == "prefork_accepted_connections" && i == 2) continue;  // UDP
        BOOST_TEST(value_of(p, f.family, f.family + "_total",
                            {{"slot", slot}, {"listener", sc.listener_name(i)}}) ==
                       std::to_string(e.listeners[i].*f.member),
                   f.family << " slot " << slot << " listener " << i);
      }
    for (unsigned k = 0; k < error_kind_count; ++k) {
      const std::string kind = error_kind_name(static_cast<ErrorKind>(k));
      BOOST_TEST(value_of(p, "prefork_errors_by_kind", "prefork_errors_by_kind_total",
                          {{"slot", slot}, {"kind", kind}}) == std::to_string(e.kinds[k]),
                 "slot " << slot << " kind " << kind);
    }
    for (unsigned r = 0; r < close_reason_count; ++r) {
      const std::string reason(close_reason_name(static_cast<CloseReason>(r)));
      BOOST_TEST(value_of(p, "prefork_connections_closed", "prefork_connections_closed_total",
                          {{"slot", slot}, {"reason", reason}}) == std::to_string(e.closes[r]),
                 "slot " << slot << " reason " << reason);
    }
  }
}

constexpr double bucket_bounds[] = {1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5,  1e-4, 2.5e-4,
                                    5e-4, 1e-3,   2.5e-3, 5e-3, 0.01,   0.025, 0.05, 0.1,
                                    0.25, 0.5,    1,      2.5,  5,      10};

// One histogram series per source: its buckets in order, cumulative counts
// equal to the values recorded at or below each bound, +Inf == _count.
void check_histograms(const Parsed& p, const Scenario& sc) {
  const std::string family = "prefork_request_duration_seconds";
  for (const std::string& slot : slot_labels) {
    BOOST_TEST_CONTEXT("slot " << slot) {
      const Expected& e = sc.expected.at(slot);
      std::vector<const Sample*> buckets;
      for (const Sample& s : p.families.at(family).samples)
        if (s.name == family + "_bucket" && s.labels.at("slot") == slot) {
          BOOST_TEST(s.labels.size() == 2u);
          buckets.push_back(&s);
        }
      BOOST_REQUIRE(buckets.size() == std::size(bucket_bounds) + 1);
      std::uint64_t previous = 0;
      for (std::size_t i = 0; i < std::size(bucket_bounds); ++i) {
        const double bound = bucket_bounds[i];
        BOOST_TEST(number(buckets[i]->labels.at("le")) == bound);
        const std::uint64_t n = count_of(buckets[i]->value);
        BOOST_TEST(n >= previous);
        previous = n;
        const auto at_most = static_cast<std::uint64_t>(
            std::count_if(e.latencies_ns.begin(), e.latencies_ns.end(),
                          [&](std::uint64_t v) { return static_cast<double>(v) / 1e9 <= bound; }));
        BOOST_TEST(n == at_most, "le " << bound);
      }
      BOOST_TEST(buckets.back()->labels.at("le") == "+Inf");
      const std::string count = value_of(p, family, family + "_count", {{"slot", slot}});
      BOOST_TEST(buckets.back()->value == count);
      BOOST_TEST(count_of(count) == e.latencies_ns.size());
      BOOST_TEST(count_of(count) >= previous);
      std::uint64_t sum_ns = 0;
      for (std::uint64_t v : e.latencies_ns) sum_ns += v;
      BOOST_TEST(value_of(p, family, family + "_sum", {{"slot", slot}}) == seconds_text(sum_ns));
    }
  }
  // Canonical OpenMetrics spellings, as Python's parser and Go's %g write them.
  std::vector<std::string> les;
  for (const Sample& s : p.families.at(family).samples)
    if (s.name == family + "_bucket" && s.labels.at("slot") == "0")
      les.push_back(s.labels.at("le"));
  const std::vector<std::string> canonical = {
      "1e-06",  "2.5e-06", "5e-06",  "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025",
      "0.0005", "0.001",   "0.0025", "0.005", "0.01",    "0.025", "0.05",   "0.1",
      "0.25",   "0.5",     "1.0",    "2.5",   "5.0",     "10.0",  "+Inf"};
  BOOST_TEST(les == canonical, boost::test_tools::per_element());
}

std::set<std::string> keys(const json::object& o) {
  std::set<std::string> out;
  for (const auto& kv : o) out.insert(std::string(kv.key()));
  return out;
}

std::uint64_t u64(const json::object& o, const char* key) {
  return o.at(key).to_number<std::uint64_t>();
}

const std::set<std::string> counter_keys = {
    "requests",    "bytes_in", "bytes_out", "connections_total", "errors",
    "error_kinds", "closes",   "listeners", "latency_ns"};

// The counter fields of a worker, retired or totals against `e`.
void check_json_counters(const json::object& o, const Expected& e) {
  BOOST_TEST(u64(o, "requests") == e.total(&ListenerValues::requests));
  BOOST_TEST(u64(o, "errors") == e.total(&ListenerValues::errors));
  BOOST_TEST(u64(o, "connections_total") == e.total(&ListenerValues::connections));
  BOOST_TEST(u64(o, "bytes_in") == e.total(&ListenerValues::bytes_in));
  BOOST_TEST(u64(o, "bytes_out") == e.total(&ListenerValues::bytes_out));
  const json::object& kinds = o.at("error_kinds").as_object();
  BOOST_TEST(kinds.size() == error_kind_count);
  for (unsigned k = 0; k < error_kind_count; ++k)
    BOOST_TEST(u64(kinds, error_kind_name(static_cast<ErrorKind>(k))) == e.kinds[k]);
  const json::object& closes = o.at("closes").as_object();
  BOOST_TEST(closes.size() == close_reason_count);
  for (unsigned r = 0; r < close_reason_count; ++r)
    BOOST_TEST(u64(closes, std::string(close_reason_name(static_cast<CloseReason>(r))).c_str()) ==
               e.closes[r]);
  const json::array& listeners = o.at("listeners").as_array();
  BOOST_REQUIRE(listeners.size() == 3u);
  for (unsigned i = 0; i < 3; ++i) {
    const json::object& l = listeners[i].as_object();
    BOOST_TEST(keys(l) == (std::set<std::string>{"requests", "errors", "connections", "bytes_in",
                                                 "bytes_out"}));
    BOOST_TEST(u64(l, "requests") == e.listeners[i].requests);
    BOOST_TEST(u64(l, "errors") == e.listeners[i].errors);
    BOOST_TEST(u64(l, "connections") == e.listeners[i].connections);
    BOOST_TEST(u64(l, "bytes_in") == e.listeners[i].bytes_in);
    BOOST_TEST(u64(l, "bytes_out") == e.listeners[i].bytes_out);
  }

  const json::object& lat = o.at("latency_ns").as_object();
  BOOST_TEST(keys(lat) == (std::set<std::string>{"count", "sum", "min", "mean", "p50", "p90", "p99",
                                                 "p999", "max"}));
  auto local = std::make_unique<Histogram>();
  std::uint64_t sum = 0;
  for (std::uint64_t v : e.latencies_ns) {
    local->record(v);
    sum += v;
  }
  BOOST_TEST(u64(lat, "count") == e.latencies_ns.size());
  BOOST_TEST(u64(lat, "sum") == sum);
  BOOST_TEST(u64(lat, "min") == local->min());
  BOOST_TEST(u64(lat, "max") == local->max());
  BOOST_TEST(lat.at("mean").to_number<double>() == local->mean());
  BOOST_TEST(u64(lat, "p50") == local->percentile(50));
  BOOST_TEST(u64(lat, "p90") == local->percentile(90));
  BOOST_TEST(u64(lat, "p99") == local->percentile(99));
  BOOST_TEST(u64(lat, "p999") == local->percentile(99.9));
}

Expected sum_of(const std::map<std::string, Expected>& all) {
  Expected total;
  for (const auto& [slot, e] : all) {
    for (unsigned i = 0; i < 3; ++i) {
      total.listeners[i].requests += e.listeners[i].requests;
      total.listeners[i].errors += e.listeners[i].errors;
      total.listeners[i].connections += e.listeners[i].connections;
      total.listeners[i].bytes_in += e.listeners[i].bytes_in;
      total.listeners[i].bytes_out += e.listeners[i].bytes_out;
    }
    for (unsigned k = 0; k < error_kind_count; ++k) total.kinds[k] += e.kinds[k];
    for (unsigned r = 0; r < close_reason_count; ++r) total.closes[r] += e.closes[r];
    total.latencies_ns.insert(total.latencies_ns.end(), e.latencies_ns.begin(),
                              e.latencies_ns.end());
  }
  return total;
}

}  // namespace

BOOST_AUTO_TEST_CASE(content_types) {
  BOOST_TEST(metrics_content_type(MetricsFormat::openmetrics) ==
             "application/openmetrics-text; version=1.0.0; charset=utf-8");
  BOOST_TEST(metrics_content_type(MetricsFormat::prometheus_text) ==
             "text/plain; version=0.0.4; charset=utf-8");
}

BOOST_AUTO_TEST_CASE(openmetrics_has_every_family_and_value) {
  Scenario sc;
  const std::string text = render_metrics(sc.snap, MetricsFormat::openmetrics);
  BOOST_TEST_MESSAGE(text);
  const Parsed p = parse(text, true);
  BOOST_TEST(p.eof);
  BOOST_TEST(text.size() >= 6u);
  BOOST_TEST(text.substr(text.size() - 6) == "# EOF\n");
  check_families(p, true);
  check_values(p, sc);
  check_histograms(p, sc);
}

BOOST_AUTO_TEST_CASE(prometheus_text_has_the_same_samples) {
  Scenario sc;
  const std::string om = render_metrics(sc.snap, MetricsFormat::openmetrics);
  const std::string text = render_metrics(sc.snap, MetricsFormat::prometheus_text);
  const Parsed p = parse(text, false);
  BOOST_TEST(!p.eof);
  BOOST_TEST(text.find("# UNIT") == std::string::npos);
  check_families(p, false);
  // Only the metadata differs between the two formats.
  BOOST_TEST(p.sample_lines == parse(om, true).sample_lines, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(sums_over_slots_survive_a_retirement) {
  Scenario sc;
  auto requests = [](const ScoreboardSnapshot& snap) {
    const Parsed p = parse(render_metrics(snap), true);
    std::uint64_t sum = 0;
    for (const Sample& s : p.families.at("prefork_requests").samples) sum += count_of(s.value);
    return sum;
  };
  const std::uint64_t before = requests(sc.snap);
  BOOST_TEST(before == sum_of(sc.expected).total(&ListenerValues::requests));
  sc.board->retire(0);
  const ScoreboardSnapshot after = ScoreboardReader::open(sc.shm.name).snapshot();
  BOOST_TEST(requests(after) == before);
  const Parsed p = parse(render_metrics(after), true);
  BOOST_TEST(value_of(p, "prefork_request_duration_seconds",
                      "prefork_request_duration_seconds_count", {{"slot", "retired"}}) == "8");
  BOOST_TEST(sample_count(p, "prefork_worker_pid") == 1u);
}

BOOST_AUTO_TEST_CASE(label_values_are_escaped) {
  Scenario sc;
  ScoreboardSnapshot snap = sc.snap;
  const std::string odd = "tcp \"quoted\" back\\slash\nnew line";
  snap.listeners[0].name = odd;
  snap.listeners[1].name = "framed \xff\xfe";  // not UTF-8
  for (MetricsFormat format : {MetricsFormat::openmetrics, MetricsFormat::prometheus_text}) {
    const std::string text = render_metrics(snap, format);
    BOOST_TEST(text.find("listener=\"tcp \\\"quoted\\\" back\\\\slash\\nnew line\"") !=
               std::string::npos);
    const Parsed p = parse(text, format == MetricsFormat::openmetrics);
    BOOST_TEST(value_of(p, "prefork_listen_queue_depth", "prefork_listen_queue_depth",
                        {{"listener", odd}}) == "5");
    BOOST_TEST(value_of(p, "prefork_listen_queue_limit", "prefork_listen_queue_limit",
                        {{"listener", "framed \xEF\xBF\xBD\xEF\xBF\xBD"}}) == "64");
  }
}

BOOST_AUTO_TEST_CASE(a_scoreboard_without_listeners_counts_per_slot) {
  ShmName shm;
  Scoreboard board = Scoreboard::create(shm.name, 1);
  board.slot(0).counters.requests = 9;
  board.slot(0).counters.bytes_in = 90;
  const ScoreboardSnapshot snap = ScoreboardReader::open(shm.name).snapshot();
  const Parsed p = parse(render_metrics(snap), true);
  BOOST_TEST(p.eof);
  BOOST_TEST(value_of(p, "prefork_requests", "prefork_requests_total", {{"slot", "0"}}) == "9");
  BOOST_TEST(value_of(p, "prefork_received_bytes", "prefork_received_bytes_total",
                      {{"slot", "0"}}) == "90");
  BOOST_TEST(value_of(p, "prefork_requests", "prefork_requests_total", {{"slot", "retired"}}) ==
             "0");
  BOOST_TEST(!p.families.count("prefork_listen_queue_depth"));  // no samples, no family
  BOOST_TEST(!p.families.count("prefork_worker_pid"));
  BOOST_TEST(value_of(p, "prefork_request_duration_seconds",
                      "prefork_request_duration_seconds_bucket",
                      {{"slot", "0"}, {"le", "+Inf"}}) == "0");
  BOOST_TEST(value_of(p, "prefork_request_duration_seconds", "prefork_request_duration_seconds_sum",
                      {{"slot", "0"}}) == "0");
}

BOOST_AUTO_TEST_CASE(json_has_every_key_and_value) {
  Scenario sc;
  const std::string name = "stats \"q\" \\ \t\x01 \xc3\xa9 \xff";
  const std::string text = render_json(sc.snap, name);
  BOOST_TEST_MESSAGE(text);
  BOOST_TEST(text.back() == '}');  // no trailing newline
  const json::object doc = json::parse(text).as_object();
  const ScoreboardSnapshot& snap = sc.snap;

  BOOST_TEST(keys(doc) ==
             (std::set<std::string>{"name", "master_pid", "started_ns", "taken_ns", "uptime_s",
                                    "generation", "worker_restarts", "exits", "start_failures",
                                    "corrupt", "listeners", "workers", "retired", "totals"}));
  BOOST_TEST(doc.at("corrupt").is_null());
  BOOST_TEST(doc.at("name").as_string() == "stats \"q\" \\ \t\x01 \xc3\xa9 \xEF\xBF\xBD");
  BOOST_TEST(doc.at("master_pid").to_number<int>() == ::getpid());
  BOOST_TEST(u64(doc, "started_ns") == snap.started_ns);
  BOOST_TEST(u64(doc, "taken_ns") == snap.taken_ns);
  BOOST_TEST(doc.at("uptime_s").to_number<double>() ==
                 static_cast<double>(snap.taken_ns - snap.started_ns) / 1e9,
             boost::test_tools::tolerance(1e-9));
  BOOST_TEST(u64(doc, "generation") == 7u);
  BOOST_TEST(u64(doc, "worker_restarts") == 4u);
  const json::object& exits = doc.at("exits").as_object();
  BOOST_TEST(keys(exits) ==
             (std::set<std::string>{"crashed", "signaled", "recycled", "timed_out"}));
  BOOST_TEST(u64(exits, "crashed") == 1u);
  BOOST_TEST(u64(exits, "signaled") == 2u);
  BOOST_TEST(u64(exits, "recycled") == 3u);

  const json::array& listeners = doc.at("listeners").as_array();
  BOOST_REQUIRE(listeners.size() == 3u);
  const char* protocols[] = {"tcp", "framed", "udp"};
  for (unsigned i = 0; i < 3; ++i) {
    const json::object& l = listeners[i].as_object();
    BOOST_TEST(keys(l) ==
               (std::set<std::string>{"name", "protocol", "queue_depth", "queue_limit"}));
    BOOST_TEST(l.at("name").as_string() == sc.listener_name(i));
    BOOST_TEST(l.at("protocol").as_string() == protocols[i]);
  }
  BOOST_TEST(u64(listeners[0].as_object(), "queue_depth") == 5u);
  BOOST_TEST(u64(listeners[0].as_object(), "queue_limit") == 128u);
  BOOST_TEST(u64(listeners[1].as_object(), "queue_depth") == 0u);
  BOOST_TEST(u64(listeners[1].as_object(), "queue_limit") == 64u);
  BOOST_TEST(listeners[2].as_object().at("queue_depth").is_null());
  BOOST_TEST(listeners[2].as_object().at("queue_limit").is_null());

  const json::array& workers = doc.at("workers").as_array();
  BOOST_REQUIRE(workers.size() == 3u);
  std::set<std::string> worker_keys = counter_keys;
  worker_keys.insert({"slot", "pid", "state", "generation", "started_ns", "heartbeat_ns",
                      "rss_bytes", "connections_active", "connections_max", "at_connection_cap",
                      "waiting", "stale"});
  struct Identity {
    int pid;
    const char* state;
    std::uint64_t generation, started_ns, heartbeat_ns, rss_bytes, connections_active;
  };
  const Identity identities[] = {
      {1001, "ready", 2, slot0_started_ns, slot0_heartbeat_ns, 4'321'000, 3},
      {1002, "starting", 3, slot1_started_ns, 0, 0, 0},
      {0, "empty", 0, 0, 0, 0, 0},
  };
  for (unsigned i = 0; i < 3; ++i) {
    BOOST_TEST_CONTEXT("worker " << i) {
      const json::object& w = workers[i].as_object();
      const Identity& id = identities[i];
      BOOST_TEST(keys(w) == worker_keys);
      BOOST_TEST(u64(w, "slot") == i);
      BOOST_TEST(w.at("pid").to_number<int>() == id.pid);
      BOOST_TEST(w.at("state").as_string() == id.state);
      BOOST_TEST(u64(w, "generation") == id.generation);
      BOOST_TEST(u64(w, "started_ns") == id.started_ns);
      BOOST_TEST(u64(w, "heartbeat_ns") == id.heartbeat_ns);
      BOOST_TEST(u64(w, "rss_bytes") == id.rss_bytes);
      BOOST_TEST(u64(w, "connections_active") == id.connections_active);
      BOOST_TEST(u64(w, "connections_max") == (i == 0 ? 3u : i == 1 ? 8u : 0u));
      BOOST_TEST(w.at("at_connection_cap").as_bool() == (i == 0));
      BOOST_TEST(u64(w, "waiting") == (i == 0 ? 1u : 0u));
      BOOST_TEST(w.at("stale").as_bool() == false);
      check_json_counters(w, sc.expected.at(std::to_string(i)));
    }
  }

  const json::object& retired = doc.at("retired").as_object();
  BOOST_TEST(keys(retired) == counter_keys);
  BOOST_TEST_CONTEXT("retired") { check_json_counters(retired, sc.expected.at("retired")); }

  const json::object& totals = doc.at("totals").as_object();
  std::set<std::string> total_keys = counter_keys;
  total_keys.insert("worker_restarts");
  BOOST_TEST(keys(totals) == total_keys);
  BOOST_TEST(u64(totals, "worker_restarts") == 4u);
  BOOST_TEST_CONTEXT("totals") { check_json_counters(totals, sum_of(sc.expected)); }
}

// For check_exposition.sh: `unit_exposition --run_test=write_samples -- DIR`
// writes the scenario in every format, plus one with awkward label values.
BOOST_AUTO_TEST_CASE(write_samples, *boost::unit_test::disabled()) {
  const auto& suite = boost::unit_test::framework::master_test_suite();
  BOOST_REQUIRE_MESSAGE(suite.argc == 2, "usage: --run_test=write_samples -- DIR");
  const std::string dir = suite.argv[1];
  auto write = [&](const std::string& file, const std::string& text) {
    std::ofstream out(dir + "/" + file, std::ios::binary);
    out << text;
    BOOST_REQUIRE_MESSAGE(out.good(), "cannot write " << dir << "/" << file);
  };
  Scenario sc;
  write("scenario.om", render_metrics(sc.snap, MetricsFormat::openmetrics));
  write("scenario.prom", render_metrics(sc.snap, MetricsFormat::prometheus_text));
  write("scenario.json", render_json(sc.snap, sc.shm.name));
  ScoreboardSnapshot odd = sc.snap;
  odd.listeners[0].name = "tcp \"quoted\" back\\slash\nnew line \xc3\xa9";
  odd.listeners[1].name = "framed \xff";
  write("escaped.om", render_metrics(odd, MetricsFormat::openmetrics));
  write("escaped.prom", render_metrics(odd, MetricsFormat::prometheus_text));
  write("escaped.json", render_json(odd, "stats \"q\"\n\xff"));
  ShmName bare;
  Scoreboard board = Scoreboard::create(bare.name, 1);
  const ScoreboardSnapshot empty = ScoreboardReader::open(bare.name).snapshot();
  write("bare.om", render_metrics(empty, MetricsFormat::openmetrics));
  write("bare.prom", render_metrics(empty, MetricsFormat::prometheus_text));
  write("bare.json", render_json(empty, bare.name));
}
