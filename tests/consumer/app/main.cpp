// The smallest useful prefork server, built against the installed package:
// every request is answered with "consumer:" followed by the request reversed.
#include <prefork/command_line.hpp>
#include <prefork/handler.hpp>

#include <algorithm>
#include <cstring>

namespace {

class ReverseHandler : public prefork::Handler {
 public:
  void handle(const prefork::Request&, std::string_view data, prefork::Reply& reply) override {
    constexpr std::string_view prefix = "consumer:";
    auto out = reply.allocate(prefix.size() + data.size());
    std::memcpy(out.data(), prefix.data(), prefix.size());
    std::reverse_copy(data.begin(), data.end(), out.begin() + prefix.size());
  }
};

}  // namespace

int main(int argc, char** argv) {
  ReverseHandler handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "consumer";
  defaults.description = "Answers each request with \"consumer:\" and the request reversed.";
  defaults.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  defaults.stats_name = "prefork_consumer";
  return prefork::prefork_main(argc, argv, handler, defaults);
}
