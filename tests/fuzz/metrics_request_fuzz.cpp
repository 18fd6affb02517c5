// The --metrics endpoint's request parser on any bytes: every head gets one
// of its answers, never a crash (the endpoint's thread serves the network).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "metrics_endpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  const prefork::MetricsRequest request = prefork::parse_metrics_request(head);
  using Kind = prefork::MetricsRequest::Kind;
  // Only a GET or a HEAD asks for something; HEAD never for a body.
  if (request.kind != Kind::bad && request.kind != Kind::method &&
      !(head.starts_with("GET ") || head.starts_with("HEAD ")))
    std::abort();
  if (request.head_only && !head.starts_with("HEAD ")) std::abort();
  return 0;
}
