// The command line every prefork server shares.
#pragma once

#include <prefork/server.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

// A flag of the embedder's own, parsed with the common ones: `--flag VALUE`.
// `apply` may throw std::invalid_argument; the message becomes a usage error.
struct ExtraOption {
  std::string flag;  // with the dashes: "--io-wait-us"
  std::string help;  // one line for --help
  std::function<void(std::string_view value)> apply;
};

struct CommandLineDefaults {
  std::string program;                  // for --help and --version
  std::string description;              // one line for --help
  std::vector<ListenerSpec> listeners;  // used when no --tcp/--framed/--udp is given
  std::string stats_name;
  std::vector<ExtraOption> options;  // the program's own flags
};

// Parses the common flags into a ServerConfig:
//   --tcp/--framed/--udp HOST:PORT (repeatable), --workers N,
//   --start fork|spawn, --stats NAME, --max-frame BYTES,
//   --graceful-timeout SECONDS, --backlog N, --worker-exe PATH,
//   --help, --version, and `-- ARGS...` for the spawned worker program.
// --help and --version print and exit 0; a bad flag prints the error and
// the usage on stderr and exits 2.
ServerConfig parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults);

// The whole main() of a typical server: the worker role when started as a
// spawned worker, otherwise parse the command line and serve().
int prefork_main(int argc, char** argv, Handler& handler, const CommandLineDefaults& defaults);

}  // namespace prefork
