// One request and what its reply must be, built once before the run and
// shared read-only by every connection (no per-request work or allocation).
#pragma once

#include <cstddef>
#include <string>

#include "options.hpp"

namespace bench {

struct Exchange {
  std::string request;       // the bytes on the wire; framed: with its header
  std::size_t payload_size;  // the request without a frame header
  std::size_t reply_size;    // the reply without a frame header
  std::string expected;      // the exact reply under --check; empty otherwise
};

// With --reply-size N: "N\n" padded with 'x' to --size (Stevens' "N bytes
// please"), reply N bytes. Otherwise --size bytes of varied lowercase and a
// reply of the same size.
Exchange make_exchange(const Options& options);

}  // namespace bench
