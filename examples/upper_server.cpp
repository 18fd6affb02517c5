// upper_server: the lesson's socketserver example as a pre-fork server.
// Raw TCP, framed TCP and UDP, every request answered upper-cased.
//
//   build/bin/upper_server                      # tcp+udp :8080, framed :8081
//   build/bin/upper_server --start spawn --workers 4
#include <prefork/command_line.hpp>

#include "upper_handler.hpp"

int main(int argc, char** argv) {
  UpperHandler handler;
  prefork::CommandLineDefaults defaults;
  defaults.program = "upper_server";
  defaults.description = "Answers every request upper-cased: a raw TCP chunk, a frame, a datagram.";
  defaults.listeners = {
      {prefork::Protocol::stream, prefork::Address::parse("127.0.0.1:8080")},
      {prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:8081")},
      {prefork::Protocol::datagram, prefork::Address::parse("127.0.0.1:8080")},
  };
  defaults.stats_name = "upper_server";
  return prefork::prefork_main(argc, argv, handler, defaults);
}
