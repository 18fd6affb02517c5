// The command line of prefork-bench: what to load, how hard, for how long.
#pragma once

#include <prefork/address.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace bench {

enum class Target { framed, tcp, udp };
enum class Check { none, upper };

const char* target_name(Target target) noexcept;

// Hard caps, so that every run stops by itself.
inline constexpr double max_duration_s = 600;
inline constexpr double max_warmup_s = 60;
inline constexpr std::uint64_t max_requests = 1'000'000'000;
inline constexpr unsigned max_connections = 20'000;
inline constexpr std::size_t max_stream_bytes = 16u << 20;
inline constexpr std::size_t max_datagram_bytes = 65'507;

struct Options {
  Target target = Target::framed;
  prefork::Address address;
  std::string address_text;  // as resolved, "127.0.0.1:8081"
  unsigned connections = 16;
  unsigned threads = 0;        // resolved: never more than connections
  double duration_s = 5;       // measured time limit
  std::uint64_t requests = 0;  // measured request limit; 0 = none
  double warmup_s = 1;         // not recorded
  std::size_t size = 64;       // request payload, before --reply-size raises it
  std::optional<std::size_t> reply_size;
  bool new_connection = false;  // one TCP connection per request
  double rate = 0;              // open loop, requests/s in total; 0 = closed loop
  unsigned timeout_ms = 0;      // resolved: 5000 (TCP) or 1000 (UDP) by default
  Check check = Check::none;
  bool json = false;
  bool quiet = false;
};

// Fills `options`. Returns -1 to go on, or the exit status: 0 after --help,
// 2 after a bad command line or a target outside loopback (the error and a
// hint line on stderr).
int parse_options(int argc, char** argv, Options& options);

}  // namespace bench
