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
#include <string_view>

namespace bench {

namespace {

constexpr const char* usage =
    "usage: prefork-bench [OPTIONS] [HOST:PORT]\n"
    "Loads a server on loopback; reports throughput, latency percentiles, errors\n"
    "by kind and its own CPU use.\n"
    "Target\n"
    "  --target framed|tcp|udp  framed: 4-byte big-endian length + payload each way;\n"
    "                           tcp: raw bytes; udp: one datagram each way (default framed)\n"
    "  --address HOST:PORT      loopback only, 127.0.0.0/8 or [::1]; also the last\n"
    "                           argument (default 127.0.0.1:8081 framed, :8080 otherwise)\n"
    "Load\n"
    "  --connections C          concurrent connections (default 16)\n"
    "  --threads T              threads, each with its own epoll and share of the\n"
    "                           connections (default: usable CPUs, at most C)\n"
    "  --new-connection         tcp/framed: connect, send, read the reply, close, for\n"
    "                           every request (Stevens' client)\n"
    "  --rate R                 open loop: R requests/s in total on a fixed schedule;\n"
    "                           latency counts from each request's intended send time\n"
    "                           (default: closed loop, send again on each reply)\n"
    "Length (whichever limit comes first)\n"
    "  --duration S             measured seconds (default 5; 600 with --requests; max 600)\n"
    "  --requests N             measured requests in total\n"
    "  --warmup S               seconds of load before measuring (default 1; 0 with\n"
    "                           --requests; max 60)\n"
    "Requests\n"
    "  --size B                 request payload bytes (default 64)\n"
    "  --reply-size N           ask for N reply bytes: the payload starts \"N\\n\" (\"N bytes\n"
    "                           please\"), padded with 'x' to --size; the reply must be N bytes\n"
    "  --check upper            verify each reply is the upper-cased request\n"
    "  --timeout MS             per request (default 5000; udp 1000); the connection\n"
    "                           is then closed and reopened\n"
    "Output\n"
    "  --json                   one JSON document on stdout instead of the summary\n"
    "  --quiet                  no progress line (otherwise shown when stderr is a terminal)\n"
    "  --help                   this text\n"
    "Exit status: 0 without errors; 1 with request errors or a failed system call;\n"
    "2 for a bad command line or a target outside loopback.\n";

int bad(const char* what, std::string_view arg) {
  std::fprintf(stderr, "prefork-bench: %s: %.*s\n%s", what, static_cast<int>(arg.size()),
               arg.data(), usage);
  return 2;
}

bool to_double(const std::string& text, double& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0' && errno == 0 && std::isfinite(out);
}

bool to_unsigned(const std::string& text, std::uint64_t& out) {
  if (text.empty() || text[0] == '-' || text[0] == '+') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(text.c_str(), &end, 10);
  return *end == '\0' && errno == 0;
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

int parse_options(int argc, char** argv, Options& o) {
  std::string address;
  bool duration_given = false, warmup_given = false;
  std::uint64_t threads = 0, timeout_ms = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (!arg.starts_with("--")) {
      if (!address.empty()) return bad("more than one address", arg);
      address = arg;
      continue;
    }
    // Flags without a value.
    if (arg == "--new-connection") {
      o.new_connection = true;
      continue;
    }
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    if (arg == "--quiet") {
      o.quiet = true;
      continue;
    }
    // Flags with a value: "--flag VALUE" or "--flag=VALUE".
    std::string_view flag = arg;
    std::string value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) {
      value = argv[++i];
    } else {
      return bad("missing value for", arg);
    }
    std::uint64_t number = 0;
    double real = 0;
    if (flag == "--target") {
      if (value == "framed")
        o.target = Target::framed;
      else if (value == "tcp")
        o.target = Target::tcp;
      else if (value == "udp")
        o.target = Target::udp;
      else
        return bad("--target wants framed, tcp or udp", value);
    } else if (flag == "--address") {
      if (!address.empty()) return bad("more than one address", value);
      address = value;
    } else if (flag == "--connections") {
      if (!to_unsigned(value, number) || number < 1 || number > max_connections)
        return bad("--connections wants a number from 1 to 20000", value);
      o.connections = static_cast<unsigned>(number);
    } else if (flag == "--threads") {
      if (!to_unsigned(value, threads) || threads < 1 || threads > 256)
        return bad("--threads wants a number from 1 to 256", value);
    } else if (flag == "--duration") {
      if (!to_double(value, o.duration_s) || !(o.duration_s > 0 && o.duration_s <= max_duration_s))
        return bad("--duration wants seconds in (0, 600]", value);
      duration_given = true;
    } else if (flag == "--requests") {
      if (!to_unsigned(value, o.requests) || o.requests < 1 || o.requests > max_requests)
        return bad("--requests wants a number from 1 to 1000000000", value);
    } else if (flag == "--warmup") {
      if (!to_double(value, o.warmup_s) || !(o.warmup_s >= 0 && o.warmup_s <= max_warmup_s))
        return bad("--warmup wants seconds in [0, 60]", value);
      warmup_given = true;
    } else if (flag == "--size") {
      if (!to_unsigned(value, number) || number > max_stream_bytes)
        return bad("--size wants bytes from 0 to 16777216", value);
      o.size = number;
    } else if (flag == "--reply-size") {
      if (!to_unsigned(value, number) || number > max_stream_bytes)
        return bad("--reply-size wants bytes from 0 to 16777216", value);
      o.reply_size = number;
    } else if (flag == "--rate") {
      if (!to_double(value, real) || !(real > 0 && real <= 1e7))
        return bad("--rate wants requests/s in (0, 10000000]", value);
      o.rate = real;
    } else if (flag == "--timeout") {
      if (!to_unsigned(value, timeout_ms) || timeout_ms < 1 || timeout_ms > 600'000)
        return bad("--timeout wants milliseconds from 1 to 600000", value);
    } else if (flag == "--check") {
      if (value == "upper")
        o.check = Check::upper;
      else if (value == "none")
        o.check = Check::none;
      else
        return bad("--check wants upper or none", value);
    } else {
      return bad("unknown option", arg);
    }
  }

  // Combinations and defaults that depend on other flags.
  const bool udp = o.target == Target::udp;
  if (o.new_connection && udp) return bad("--new-connection is for tcp and framed", "udp");
  if (o.check == Check::upper && o.reply_size)
    return bad("--check upper compares with the request; it cannot go with", "--reply-size");
  const std::size_t payload_limit = udp ? max_datagram_bytes : max_stream_bytes;
  const std::size_t least = o.target == Target::framed ? 0 : 1;
  if (o.size < least || o.size > payload_limit)
    return bad(udp ? "--size for udp wants 1 to 65507 bytes" : "--size for tcp wants at least 1",
               std::to_string(o.size));
  if (o.reply_size && (*o.reply_size < least || *o.reply_size > payload_limit))
    return bad(udp ? "--reply-size for udp wants 1 to 65507 bytes"
                   : "--reply-size for tcp wants at least 1",
               std::to_string(*o.reply_size));
  if (o.requests != 0 && !duration_given) o.duration_s = max_duration_s;
  if (o.requests != 0 && !warmup_given) o.warmup_s = 0;
  o.timeout_ms = timeout_ms != 0 ? static_cast<unsigned>(timeout_ms) : udp ? 1000 : 5000;
  o.threads = static_cast<unsigned>(
      std::min<std::uint64_t>(threads != 0 ? threads : usable_cpus(), o.connections));

  if (address.empty()) address = o.target == Target::framed ? "127.0.0.1:8081" : "127.0.0.1:8080";
  try {
    o.address = prefork::Address::parse(address);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "prefork-bench: %s\n%s", e.what(), usage);
    return 2;
  }
  o.address_text = o.address.to_string();
  if (!is_loopback(o.address)) {
    std::fprintf(stderr,
                 "prefork-bench: refusing %s%s%s%s: only loopback targets, 127.0.0.0/8 or ::1, "
                 "may be loaded\n",
                 address.c_str(), address == o.address_text ? "" : " (",
                 address == o.address_text ? "" : o.address_text.c_str(),
                 address == o.address_text ? "" : ")");
    return 2;
  }
  if (o.address.port() == 0) return bad("the target needs a port other than 0", address);
  return -1;
}

}  // namespace bench
