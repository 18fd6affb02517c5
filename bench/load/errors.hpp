// How a request can fail, and the per-thread tally of failures.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace bench {

enum class ErrorKind : unsigned {
  connect_refused,  // ECONNREFUSED: nothing listens (TCP), or ICMP port unreachable (UDP)
  connect_failed,   // any other failure to open a connection (EADDRNOTAVAIL, EMFILE, ...)
  reset,            // ECONNRESET/EPIPE, or another receive error
  closed_early,     // EOF before the whole reply
  timeout,          // no whole reply within --timeout (UDP: a lost datagram)
  bad_reply,        // wrong length, extra bytes, or not the upper-cased request
  send_failed,      // send() failed other than by a reset
};
inline constexpr std::size_t error_kind_count = 7;

// The JSON key and the word in the summary.
constexpr const char* error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::connect_refused:
      return "connect_refused";
    case ErrorKind::connect_failed:
      return "connect_failed";
    case ErrorKind::reset:
      return "reset";
    case ErrorKind::closed_early:
      return "closed_early";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::bad_reply:
      return "bad_reply";
    case ErrorKind::send_failed:
      return "send_failed";
  }
  return "unknown";
}

// One failure: the call that failed (or a short reason) and its errno (0 if none).
struct Failure {
  ErrorKind kind = ErrorKind::reset;
  const char* what = "";
  int error = 0;
};

// Written by one driver thread, merged after the run. No allocation: the
// first failure of each kind is kept as a pointer to a static string.
struct ErrorCounts {
  std::array<std::uint64_t, error_kind_count> count{};
  std::array<Failure, error_kind_count> first{};

  void add(const Failure& failure) noexcept {
    const auto k = static_cast<std::size_t>(failure.kind);
    if (count[k]++ == 0) first[k] = failure;
  }
  void merge(const ErrorCounts& other) noexcept {
    for (std::size_t k = 0; k < error_kind_count; ++k) {
      if (count[k] == 0 && other.count[k] != 0) first[k] = other.first[k];
      count[k] += other.count[k];
    }
  }
  std::uint64_t total() const noexcept {
    std::uint64_t sum = 0;
    for (auto n : count) sum += n;
    return sum;
  }
};

}  // namespace bench
