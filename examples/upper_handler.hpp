// The seed lesson's handler: answer every request with its bytes
// upper-cased, as Python's bytes.upper() does (ASCII letters only).
#pragma once

#include <prefork/handler.hpp>

#include <algorithm>

class UpperHandler final : public prefork::Handler {
 public:
  void handle(const prefork::Request&, std::string_view data, prefork::Reply& reply) override {
    // Written straight into the reply buffer: no copy, no allocation.
    auto out = reply.allocate(data.size());
    std::transform(data.begin(), data.end(), out.begin(),
                   [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
  }
};
