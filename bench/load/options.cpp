#include "options.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <prefork/flag_parser.hpp>

namespace bench {

namespace {

namespace po = boost::program_options;
using prefork::flags::UsageError;

constexpr const char* usage_head =
    "usage: prefork-bench [OPTIONS] [HOST:PORT]\n"
    "Loads a server on loopback; reports throughput, latency percentiles, errors\n"
    "by kind and its own CPU use.\n";
constexpr const char* usage_tail =
    "Exit status: 0 without errors; 1 with request errors (a request still in flight\n"
    "when time is up gets the rest of its --timeout), a connection that never had a\n"
    "request answered (starved), or a failed system call;\n"
    "2 for a bad command line or a target outside loopback.\n";

po::options_description flag_descriptions() {
  using prefork::flags::section;
  po::options_description all;
  all.add(section(
      "Target",
      {{"target", "framed|tcp|udp",
        "framed: 4-byte big-endian length + payload each way; tcp: raw bytes; udp: one "
        "datagram each way (default framed)"},
       {"address", "HOST:PORT",
        "loopback only, 127.0.0.0/8 or [::1]; also the last argument (default 127.0.0.1:8081 "
        "framed, :8080 otherwise)"}}));
  all.add(section(
      "Load",
      {{"connections", "C", "concurrent connections (default 16)"},
       {"threads", "T",
        "threads, each with its own epoll and share of the connections (default: usable CPUs, "
        "at most C)"},
       {"new-connection", "",
        "tcp/framed: connect, send, read the reply, close, for every request (Stevens' client)"},
       {"rate", "R",
        "open loop: R requests/s in total on a fixed schedule; latency counts from each "
        "request's intended send time (default: closed loop, send again on each reply)"}}));
  all.add(section("Length (whichever limit comes first)",
                  {{"duration", "S", "measured seconds (default 5; 600 with --requests; max 600)"},
                   {"requests", "N", "measured requests in total"},
                   {"warmup", "S",
                    "seconds of load before measuring (default 1; 0 with --requests; max 60)"}}));
  all.add(section(
      "Requests",
      {{"size", "B", "request payload bytes (default 64)"},
       {"reply-size", "N",
        "ask for N reply bytes: the payload starts \"N\\n\" (\"N bytes please\"), padded with "
        "'x' to --size; the reply must be N bytes"},
       {"check", "upper|none", "upper: verify each reply is the upper-cased request"},
       {"timeout", "MS",
        "per request (default 5000; udp 1000); the connection is then closed and reopened"}}));
  all.add(section("Output",
                  {{"json", "", "one JSON document on stdout instead of the summary"},
                   {"quiet", "", "no progress line (otherwise shown when stderr is a terminal)"},
                   {"help,h", "", "this text"}}));
  return all;
}

// A real number in the range `is_in` accepts; `range` describes it.
double real(const std::string& flag, const std::string& text, bool (*is_in)(double),
            const char* range) {
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(value) || !is_in(value))
    throw UsageError(flag + " wants " + range + ", not '" + text + "'");
  return value;
}

bool is_loopback(const prefork::Address& address) {
  if (address.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address.data());
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (address.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address.data());
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
  }
  return false;
}

unsigned usable_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

}  // namespace

const char* target_name(Target target) noexcept {
  switch (target) {
    case Target::framed:
      return "framed";
    case Target::tcp:
      return "tcp";
    case Target::udp:
      return "udp";
  }
  return "unknown";
}

namespace {

// Returns -1 to go on, or 0 after --help; throws UsageError.
int parse(int argc, char** argv, Options& o) {
  const po::options_description descriptions = flag_descriptions();
  const po::parsed_options parsed =
      prefork::flags::parse(std::vector<std::string>(argv + 1, argv + argc), descriptions);
  for (const po::option& option : parsed.options)
    if (option.string_key == "help") {
      std::printf("%s%s\n%s", usage_head, prefork::flags::help_text(descriptions).c_str(),
                  usage_tail);
      return 0;
    }

  std::string address;
  bool duration_given = false, warmup_given = false;
  unsigned threads = 0, timeout_ms = 0;
  for (const po::option& option : parsed.options) {
    const std::string flag = "--" + option.string_key;
    const std::string value = option.value.empty() ? "" : option.value[0];
    if (option.string_key.empty() || flag == "--address") {  // a word: the address
      if (!address.empty()) throw UsageError("more than one address: '" + value + "'");
      address = value;
    } else if (flag == "--new-connection") {
      o.new_connection = true;
    } else if (flag == "--json") {
      o.json = true;
    } else if (flag == "--quiet") {
      o.quiet = true;
    } else if (flag == "--target") {
      if (value == "framed")
        o.target = Target::framed;
      else if (value == "tcp")
        o.target = Target::tcp;
      else if (value == "udp")
        o.target = Target::udp;
      else
        throw UsageError("--target wants framed, tcp or udp, not '" + value + "'");
    } else if (flag == "--connections") {
      o.connections = prefork::flags::number(flag, value, 1u, max_connections);
    } else if (flag == "--threads") {
      threads = prefork::flags::number(flag, value, 1u, 256u);
    } else if (flag == "--duration") {
      o.duration_s = real(
          flag, value, [](double s) { return s > 0 && s <= max_duration_s; },
          "seconds in (0, 600]");
      duration_given = true;
    } else if (flag == "--requests") {
      o.requests = prefork::flags::number<std::uint64_t>(flag, value, 1, max_requests);
    } else if (flag == "--warmup") {
      o.warmup_s = real(
          flag, value, [](double s) { return s >= 0 && s <= max_warmup_s; }, "seconds in [0, 60]");
      warmup_given = true;
    } else if (flag == "--size") {
      o.size = prefork::flags::number<std::size_t>(flag, value, 0, max_stream_bytes);
    } else if (flag == "--reply-size") {
      o.reply_size = prefork::flags::number<std::size_t>(flag, value, 0, max_stream_bytes);
    } else if (flag == "--rate") {
      o.rate = real(
          flag, value, [](double r) { return r > 0 && r <= 1e7; }, "requests/s in (0, 10000000]");
    } else if (flag == "--timeout") {
      timeout_ms = prefork::flags::number(flag, value, 1u, 600'000u);
    } else if (flag == "--check") {
      if (value == "upper")
        o.check = Check::upper;
      else if (value == "none")
        o.check = Check::none;
      else
        throw UsageError("--check wants upper or none, not '" + value + "'");
    }
  }

  // Combinations and defaults that depend on other flags.
  const bool udp = o.target == Target::udp;
  if (o.new_connection && udp) throw UsageError("--new-connection is for tcp and framed, not udp");
  if (o.check == Check::upper && o.reply_size)
    throw UsageError("--check upper compares with the request; it cannot go with --reply-size");
  const std::size_t payload_limit = udp ? max_datagram_bytes : max_stream_bytes;
  const std::size_t least = o.target == Target::framed ? 0 : 1;
  auto check_payload = [&](const char* flag, std::size_t bytes) {
    if (bytes < least || bytes > payload_limit)
      throw UsageError(std::string(flag) +
                       (udp ? " for udp wants 1 to 65507 bytes" : " for tcp wants at least 1") +
                       ", not " + std::to_string(bytes));
  };
  check_payload("--size", o.size);
  if (o.reply_size) check_payload("--reply-size", *o.reply_size);
  if (o.requests != 0 && !duration_given) o.duration_s = max_duration_s;
  if (o.requests != 0 && !warmup_given) o.warmup_s = 0;
  o.timeout_ms = timeout_ms != 0 ? timeout_ms : udp ? 1000 : 5000;
  o.threads = std::min(threads != 0 ? threads : usable_cpus(), o.connections);

  if (address.empty()) address = o.target == Target::framed ? "127.0.0.1:8081" : "127.0.0.1:8080";
  try {
    o.address = prefork::Address::parse(address);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  o.address_text = o.address.to_string();
  if (!is_loopback(o.address)) {
    std::string shown = address == o.address_text ? address : address + " (" + o.address_text + ")";
    throw UsageError("refusing " + shown +
                     ": only loopback targets, 127.0.0.0/8 or ::1, may be loaded");
  }
  if (o.address.port() == 0) throw UsageError("the target needs a port other than 0: " + address);
  return -1;
}

}  // namespace

int parse_options(int argc, char** argv, Options& o) {
  try {
    return parse(argc, argv, o);
  } catch (const UsageError& e) {
    return prefork::flags::usage_error("prefork-bench", e.what());
  }
}

}  // namespace bench
