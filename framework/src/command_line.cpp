#include <prefork/command_line.hpp>
#include <prefork/flag_parser.hpp>
#include <prefork/server.hpp>

#include <limits.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "config_check.hpp"
#include "config_file.hpp"

namespace prefork {

namespace {

namespace po = boost::program_options;

using flags::UsageError;

// The models, in the order of their table; the accept strategies, auto and
// then every one some model takes, in the order of the enum.
std::vector<Model> known_models() {
  std::vector<Model> models;
  for (const ModelFacts& model : all_model_facts()) models.push_back(model.model);
  return models;
}
std::vector<Accept> known_accepts() {
  std::vector<Accept> accepts{Accept::automatic};
  for (const ModelFacts& model : all_model_facts())
    for (Accept accept : model.accepts)
      if (std::find(accepts.begin(), accepts.end(), accept) == accepts.end())
        accepts.push_back(accept);
  std::sort(accepts.begin(), accepts.end());
  return accepts;
}

template <typename Enum>
std::string names(const std::vector<Enum>& values, std::string_view (*name)(Enum) noexcept) {
  std::string list;
  for (Enum value : values) list.append(list.empty() ? "" : ", ").append(name(value));
  return list;
}

template <typename Enum>
Enum parse_name(std::string_view flag, std::string_view value, const std::vector<Enum>& values,
                std::string_view (*name)(Enum) noexcept) {
  for (Enum candidate : values)
    if (name(candidate) == value) return candidate;
  std::string message(flag);
  message.append(" wants one of ").append(names(values, name));
  message.append(", not '").append(value).append("'");
  throw UsageError(message);
}

// A value that must be one of two words: true for the first.
bool first_of_two(std::string_view flag, std::string_view value, std::string_view first,
                  std::string_view second) {
  if (value != first && value != second) {
    std::string message(flag);
    message.append(" wants ").append(first).append(" or ").append(second);
    message.append(", not '").append(value).append("'");
    throw UsageError(message);
  }
  return value == first;
}

// A flag as --help shows it, and what its value does to the configuration.
// Every flag is also a key of the --config file (its name without the
// dashes), unless `file_key` is false.
struct Flag {
  flags::Help help;
  std::function<void(const std::string& value)> apply;
  // The listener flags: each use adds one. In the file, a key takes an
  // array or a single value; on the command line, any of them replaces all
  // the file gave.
  bool repeatable = false;
  bool file_key = true;
};

// What the flags that are not settings ask for.
struct Requests {
  bool help = false;
  bool version = false;
  bool check_only = false;  // --check-config
  std::string config_file;  // --config
};

struct FlagGroup {
  std::string title;
  std::vector<Flag> flags;
};

std::string seconds_text(std::chrono::milliseconds duration) {
  std::string text = std::to_string(duration.count() / 1000);
  if (duration.count() % 1000 != 0) text += "." + std::to_string(duration.count() % 1000 / 100);
  return text;
}

// `HOST:PORT[,idle-timeout=S][,read-timeout=S][,write-timeout=S]`: a
// listener, and the timeouts it overrides (nginx's `listen` parameters).
ListenerSpec listener_spec(Protocol protocol, const std::string& value) {
  std::string flag = "--";
  flag += protocol_name(protocol);
  const std::size_t comma = value.find(',');
  ListenerSpec spec{protocol, Address::parse(value.substr(0, comma))};
  for (std::size_t at = comma; at != std::string::npos;) {
    const std::size_t end = value.find(',', at + 1);
    const std::string_view part =
        std::string_view(value).substr(at + 1, end == value.npos ? value.npos : end - at - 1);
    at = end;
    const std::size_t equals = part.find('=');
    const std::string_view key = part.substr(0, equals);
    std::optional<std::chrono::milliseconds>* field = key == "idle-timeout"   ? &spec.timeouts.idle
                                                      : key == "read-timeout" ? &spec.timeouts.read
                                                      : key == "write-timeout"
                                                          ? &spec.timeouts.write
                                                          : nullptr;
    if (field == nullptr || equals == part.npos) {
      std::string message = flag;
      message += " wants HOST:PORT[,idle-timeout=S][,read-timeout=S][,write-timeout=S], not '";
      message += value;
      message += "'";
      throw UsageError(message);
    }
    if (protocol == Protocol::datagram) {
      std::string message = flag;
      message += " takes no ";
      message += key;
      message += ": timeouts are for TCP connections";
      throw UsageError(message);
    }
    std::string what = flag;
    what += ' ';
    what += key;
    *field = flags::seconds(what, part.substr(equals + 1), 0, 86400);
  }
  return spec;
}

// A flag whose value is a whole number in [low, high], kept in `field`.
template <typename Number>
Flag number_flag(ServerConfig& config, const std::string& name, std::string value_name,
                 std::string help, Number ServerConfig::*field, std::type_identity_t<Number> low,
                 std::type_identity_t<Number> high) {
  std::string flag = "--";
  flag += name;
  return {{name, std::move(value_name), std::move(help)},
          [&config, flag, field, low, high](const std::string& v) {
            config.*field = flags::number(flag, v, low, high);
          }};
}

// A flag whose value is seconds, from 0 to a day, kept in `field`.
Flag seconds_flag(ServerConfig& config, const std::string& name, std::string help,
                  std::chrono::milliseconds ServerConfig::*field) {
  std::string flag = "--";
  flag += name;
  return {{name, "SECONDS", std::move(help)}, [&config, flag, field](const std::string& v) {
            config.*field = flags::seconds(flag, v, 0, 86400);
          }};
}

// The supervisor's settings (README "Supervision").
FlagGroup supervision_flags(ServerConfig& config, const ServerConfig& initial) {
  FlagGroup group{"Supervision", {}};
  group.flags.push_back(seconds_flag(
      config, "timeout",
      "a worker silent this long (busy, not waiting for work) is aborted and replaced; 0: "
      "never (default " +
          seconds_text(initial.timeout) + ")",
      &ServerConfig::timeout));
  group.flags.push_back(seconds_flag(
      config, "start-timeout",
      "a worker not ready this long after its start is killed, a failed start; also how "
      "long a binary upgrade's new master has to be ready (0: 60 s); 0: never "
      "(default " +
          seconds_text(initial.start_timeout) + ")",
      &ServerConfig::start_timeout));
  group.flags.push_back(number_flag(config, "max-requests", "N",
                                    "recycle a worker after N requests (plus the jitter); 0: never",
                                    &ServerConfig::max_requests, 0, 1ull << 62));
  group.flags.push_back(number_flag(config, "max-requests-jitter", "N",
                                    "add a random 0..N to each worker's --max-requests",
                                    &ServerConfig::max_requests_jitter, 0, 1ull << 62));
  group.flags.push_back(
      number_flag(config, "max-recycling", "K",
                  "at most K workers replaced at once (recycling, reload), each by one ready first "
                  "(default " +
                      std::to_string(initial.max_recycling) + ")",
                  &ServerConfig::max_recycling, 1, 1024));
  group.flags.push_back(number_flag(
      config, "max-workers", "N",
      "the most workers SIGTTIN or the dynamic pool may reach (default twice --workers)",
      &ServerConfig::max_workers, 1, 4096));
  group.flags.push_back(
      {{"pool", "fixed|dynamic",
        "fixed: --workers, changed by SIGTTIN/SIGTTOU; dynamic: keep --min-spare..--max-spare "
        "idle workers (default fixed)"},
       [&config](const std::string& v) {
         config.pool =
             first_of_two("--pool", v, "fixed", "dynamic") ? PoolMode::fixed : PoolMode::dynamic;
       }});
  group.flags.push_back(number_flag(config, "min-spare", "N",
                                    "dynamic: start workers while fewer are idle (default " +
                                        std::to_string(initial.min_spare) + ")",
                                    &ServerConfig::min_spare, 0, 4096));
  group.flags.push_back(
      number_flag(config, "max-spare", "N",
                  "dynamic: retire a worker a second while more are idle (default " +
                      std::to_string(initial.max_spare) + ")",
                  &ServerConfig::max_spare, 1, 4096));
  group.flags.push_back(number_flag(config, "spawn-rate", "N",
                                    "dynamic: at most N workers started a second (default " +
                                        std::to_string(initial.spawn_rate) + ")",
                                    &ServerConfig::spawn_rate, 1, 1024));
  group.flags.push_back(number_flag(
      config, "max-start-failures", "N",
      "give up (exit 3) after N failed starts within --restart-window while no worker serves "
      "(default " +
          std::to_string(initial.max_start_failures) + ")",
      &ServerConfig::max_start_failures, 1, 1u << 20));
  group.flags.push_back(seconds_flag(config, "restart-window",
                                     "the window --max-start-failures counts in (default " +
                                         seconds_text(initial.restart_window) + ")",
                                     &ServerConfig::restart_window));
  group.flags.push_back(seconds_flag(
      config, "drain-delay",
      "on SIGTERM, GET /health answers 503 this long before the listeners close (default 0)",
      &ServerConfig::drain_delay));
  return group;
}

// Every flag of a server, as --help lists them, each changing `config`;
// --help and --version set `help` and `version`.
std::vector<FlagGroup> server_flags(ServerConfig& config, Requests& requests,
                                    const CommandLineDefaults& defaults) {
  const ServerConfig initial;
  FlagGroup listeners{"Listeners (each repeatable)", {}};
  for (auto [protocol, text] :
       {std::pair{Protocol::stream, "raw TCP: each chunk read is one request"},
        {Protocol::framed,
         "TCP with 4-byte big-endian length-prefixed frames: each frame is one "
         "request"},
        {Protocol::datagram, "UDP: each datagram is one request"}}) {
    listeners.flags.push_back(
        {{std::string(protocol_name(protocol)),
          protocol == Protocol::datagram ? "HOST:PORT" : "HOST:PORT[,idle-timeout=S,...]", text},
         // (An init-capture: clang before 16, which builds the
         // fuzz targets, cannot capture a structured binding.)
         [&config, protocol = protocol](const std::string& v) {
           config.listeners.push_back(listener_spec(protocol, v));
         },
         true});
  }
  listeners.flags.push_back(
      number_flag(config, "backlog", "N",
                  "listen queue length (default " + std::to_string(initial.backlog) + ")",
                  &ServerConfig::backlog, 1, 65535));
  // --max-frame: its name before messages could be lines too.
  for (std::string flag : {"max-message", "max-frame"}) {
    const std::string text =
        flag == "max-frame" ? "the same as --max-message"
                            : "largest message (frame, line, datagram) accepted; a larger frame "
                              "or line closes the connection, a larger datagram is dropped "
                              "(counted as truncated_datagram) (default " +
                                  std::to_string(defaults.max_message) + ")";
    listeners.flags.push_back(
        number_flag(config, flag, "BYTES", text, &ServerConfig::max_message, 0, 0xFFFFFFFFu));
  }
  listeners.flags.push_back(number_flag(
      config, "max-connections", "N",
      "per worker process: the most TCP connections it holds open; at N it stops accepting "
      "until one closes (the total is N x workers; default " +
          std::to_string(initial.max_connections) + ")",
      &ServerConfig::max_connections, 1, 1u << 20));
  // nginx's and HAProxy's: what a slow, idle or hostile client may hold.
  for (auto [flag, text, field] :
       {std::tuple{"idle-timeout", "close a TCP connection waiting this long for its next message",
                   &ServerConfig::idle_timeout},
        {"read-timeout",
         "close a TCP connection whose message is not all received this long "
         "after it started (a slowloris)",
         &ServerConfig::read_timeout},
        {"write-timeout", "close a TCP connection whose peer takes none of its replies this long",
         &ServerConfig::write_timeout}}) {
    std::string help(text);
    help += "; 0: never (default ";
    help += seconds_text(initial.*field);
    help += "; a listener's own: --framed HOST:PORT,";
    help += flag;
    help += "=S)";
    listeners.flags.push_back(seconds_flag(config, flag, std::move(help), field));
  }

  FlagGroup workers{"Workers", {}};
  workers.flags.push_back({{"workers", "N|auto", "worker processes (default auto: one per CPU)"},
                           [&config](const std::string& v) {
                             config.workers =
                                 v == "auto" ? 0 : flags::number("--workers", v, 1u, 1024u, "auto");
                           }});
  workers.flags.push_back(
      {{"start", "fork|spawn",
        "fork: children of this program image; spawn: new program images (default fork)"},
       [&config](const std::string& v) {
         config.start =
             first_of_two("--start", v, "fork", "spawn") ? StartMode::fork : StartMode::spawn;
       }});
  workers.flags.push_back(
      {{"worker-exe", "PATH",
        "spawn: run PATH as the worker (default: this program); the arguments after -- go to it"},
       [&config](const std::string& v) { config.worker_exe = v; }});
  workers.flags.push_back(
      {{"model", "NAME",
        "how a worker serves (default " + std::string(model_name(defaults.model)) +
            "): " + names(known_models(), model_name)},
       [&config](const std::string& v) {
         config.model = parse_name("--model", v, known_models(), model_name);
       }});
  workers.flags.push_back(
      {{"accept", "NAME",
        "how the workers of a pool take turns at new connections (default: the model's own; "
        "which go with which model: below)"},
       [&config](const std::string& v) {
         config.accept = parse_name("--accept", v, known_accepts(), accept_name);
       }});
  workers.flags.push_back(number_flag(
      config, "threads", "N",
      "prethreaded, hybrid: threads per process (default " + std::to_string(default_threads) + ")",
      &ServerConfig::threads, 1, 1024));
  workers.flags.push_back(seconds_flag(config, "graceful-timeout",
                                       "on stop, how long workers may finish their requests "
                                       "(default " +
                                           seconds_text(initial.graceful_timeout) + ")",
                                       &ServerConfig::graceful_timeout));

  FlagGroup supervision = supervision_flags(config, initial);

  FlagGroup observing{"Scoreboard and metrics", {}};
  observing.flags.push_back(
      {{"stats", "NAME",
        "shared-memory scoreboard name, for prefork-top (default " +
            (defaults.stats_name.empty() ? "prefork_<pid>" : defaults.stats_name) + ")"},
       [&config](const std::string& v) {
         // A file name in /dev/shm, which shm_open(3) refuses otherwise, with
         // room for the ".next" a binary upgrade's new master adds.
         if (v.empty() || v == "." || v == ".." || v.find('/') != std::string::npos ||
             v.size() > NAME_MAX - std::string_view(".next").size()) {
           std::string what = "--stats wants a file name in /dev/shm (not . or .., no '/', ";
           what += "at most " + std::to_string(NAME_MAX - 5) + " bytes), not '" + v + "'";
           throw UsageError(what);
         }
         config.stats_name = v;
       }});
  observing.flags.push_back(
      {{"metrics", "HOST:PORT",
        "the master serves GET /metrics (OpenMetrics) and GET /stats.json over HTTP here"},
       [&config](const std::string& v) { config.metrics = Address::parse(v); }});
  observing.flags.push_back(
      {{"worker-stats", "on|off",
        "off: workers do not count into the scoreboard (only to measure its cost; default on)"},
       [&config](const std::string& v) {
         config.worker_stats = first_of_two("--worker-stats", v, "on", "off");
       }});

  FlagGroup logging{"Logging", {}};
  logging.flags.push_back(
      {{"log-level", "LEVEL",
        "debug, info, warning or error: the least a line must be to be written (default info)"},
       [&config](const std::string& v) {
         auto level = log_level_from_name(v);
         if (!level)
           throw UsageError("--log-level wants debug, info, warning or error, not '" + v + "'");
         config.log.level = *level;
       }});
  logging.flags.push_back(
      {{"log-format", "text|json",
        "text: one line per event (time level prefork[pid] role: message); json: one JSON "
        "object per line (default text)"},
       [&config](const std::string& v) {
         config.log.format =
             first_of_two("--log-format", v, "text", "json") ? LogFormat::text : LogFormat::json;
       }});
  logging.flags.push_back(
      {{"log-file", "PATH",
        "append the log to PATH, opened again by reopen_log() after logrotate (default stderr)"},
       [&config](const std::string& v) { config.log.file = v; }});
  logging.flags.push_back(
      {{"trace", "",
        "log every lifecycle event (fork/spawn, set-up, ready, exit, reap, restart, stop) of "
        "the master and the workers, timed in ms since the master's start"},
       [&config](const std::string&) { config.trace = true; }});

  // ---- Running as a system service (issue 9: privileges, pid file) -------
  // Socket activation needs no flag: LISTEN_FDS is read by WorkerPlan.
  FlagGroup service{"Running as a service", {}};
  service.flags.push_back(
      {{"user", "NAME",
        "workers drop to this user (and its groups) once set up; the master, which binds, "
        "keeps its identity (needs root)"},
       [&config](const std::string& v) {
         if (v.empty()) throw UsageError("--user wants a user name or number");
         config.user = v;
       }});
  service.flags.push_back({{"group", "NAME", "workers drop to this group (default: the user's)"},
                           [&config](const std::string& v) {
                             if (v.empty())
                               throw UsageError("--group wants a group name or number");
                             config.group = v;
                           }});
  service.flags.push_back(
      {{"allow-root", "",
        "let workers run as root when the master is root and no --user is given (refused "
        "otherwise)"},
       [&config](const std::string&) { config.allow_root = true; }});
  service.flags.push_back(
      {{"pid-file", "PATH",
        "write the master's pid here once listening (atomically), remove it at exit; refuse to "
        "start if it names a running master"},
       [&config](const std::string& v) {
         if (v.empty()) throw UsageError("--pid-file wants a path");
         config.pid_file = v;
       }});
  // ---- end of the system-service block ------------------------------------

  std::vector<FlagGroup> groups{listeners, workers, supervision, observing, logging, service};
  if (!defaults.options.empty()) {
    FlagGroup own{defaults.program + "'s own options", {}};
    for (const ExtraOption& option : defaults.options) {
      const std::size_t dashes = std::min(option.flag.find_first_not_of('-'), option.flag.size());
      std::string help = option.help;
      if (option.initial) help += " (default " + *option.initial + ")";
      own.flags.push_back({{option.flag.substr(dashes), "VALUE", help},
                           [&option](const std::string& v) { option.apply(v); }});
    }
    groups.push_back(own);
  }
  groups.push_back(
      {"Configuration file",
       {{{"config", "FILE",
          "read the settings from a TOML file: each flag above is a key, its name without "
          "the dashes (workers = 4, framed = [\"127.0.0.1:9000\"]); flags given here win"},
         [&requests](const std::string& v) { requests.config_file = v; },
         false,
         false},
        {{"check-config", "",
          "check the flags and the --config file as the server would, print 'configuration ok' "
          "and exit 0 (or 2 with the error)"},
         [&requests](const std::string&) { requests.check_only = true; },
         false,
         false}}});
  groups.push_back({"Other",
                    {{{"help,h", "", "this text"},
                      [&requests](const std::string&) { requests.help = true; },
                      false,
                      false},
                     {{"version", "", "the program's version and prefork's"},
                      [&requests](const std::string&) { requests.version = true; },
                      false,
                      false}}});
  return groups;
}

void print_help(const CommandLineDefaults& defaults, const po::options_description& options) {
  std::printf("usage: %s [OPTION]... [-- WORKER-ARGS...]\n", defaults.program.c_str());
  if (!defaults.description.empty()) std::printf("%s\n", defaults.description.c_str());
  std::string listeners;
  for (const ListenerSpec& spec : defaults.listeners)
    listeners.append(" --")
        .append(protocol_name(spec.protocol))
        .append(" ")
        .append(spec.address.to_string());
  if (!listeners.empty())
    std::printf("Without --tcp, --framed or --udp, it serves:\n %s\n", listeners.c_str());
  std::printf("%s", flags::help_text(options).c_str());
  // The models table, indented under its heading.
  std::string models;
  const std::string table = describe_models();
  for (std::size_t at = 0; at < table.size();) {
    const std::size_t end = std::min(table.find('\n', at), table.size() - 1);
    models.append("  ").append(table, at, end - at + 1);
    at = end + 1;
  }
  std::printf("\n--model NAME, and the --accept strategies that go with it:\n%s", models.c_str());
  std::printf(
      "\nSignals to the master (README, \"Signals and exit statuses\"):\n"
      "  TERM        graceful stop (/health 503 for --drain-delay, then drain; twice: kill)\n"
      "  INT, QUIT   fast stop\n"
      "  HUP         reload the configuration and roll the workers, each replaced by a ready one\n"
      "  TTIN, TTOU  one worker more, one less\n"
      "  USR1        reopen the log file\n"
      "  USR2        binary upgrade: re-execute the program, hand over the listeners\n"
      "  others      ignored (faults such as SEGV keep their default)\n");
  std::printf(
      "Under systemd: listeners may be inherited (LISTEN_FDS: named tcp, framed, udp,\n"
      "or in the order of the flags); READY=1 and STOPPING=1 go to NOTIFY_SOCKET.\n"
      "See README, \"Running under systemd\".\n");
}

// Two words that say yes and no, as a flag's value name spells them
// ("on|off"): a TOML boolean in the file stands for them.
std::optional<std::pair<std::string, std::string>> boolean_words(const std::string& value_name) {
  for (auto [yes, no] : {std::pair{"on", "off"}, {"yes", "no"}, {"true", "false"}})
    if (value_name == std::string(yes) + "|" + no) return std::pair{yes, no};
  return std::nullopt;
}

// A flag's message about its value, said about the file's key:
// "prefork.toml:3: workers wants a number ..." for "--workers wants ...".
UsageError about_key(const std::string& path, unsigned line, const std::string& key,
                     const std::string& what) {
  std::string message = config_location(path, line);
  message += ": ";
  if (const std::size_t at = what.find("--" + key); at != std::string::npos) {
    message.append(what, 0, at).append(what, at + 2);
  } else {
    message.append(key).append(": ").append(what);
  }
  return UsageError(message);
}

// The --config file's keys, applied as the flags of the same names would be.
void apply_file(const std::string& path, const std::map<std::string, const Flag*>& by_name) {
  for (const ConfigEntry& entry : read_config_file(path)) {
    auto found = by_name.find(entry.key);
    if (found == by_name.end() || !found->second->file_key) {
      std::string message = config_location(path, entry.line);
      message += ": unknown key '";
      message += entry.key;
      message += "'";
      // The spellings people try first: graceful_timeout, --workers.
      std::string dashed =
          entry.key.substr(std::min(entry.key.find_first_not_of('-'), entry.key.size()));
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      if (auto near = by_name.find(dashed);
          dashed != entry.key && near != by_name.end() && near->second->file_key)
        message += " (the keys are the flags' names: '" + dashed + "')";
      throw UsageError(message);
    }
    const Flag& flag = *found->second;
    if (entry.array && !flag.repeatable)
      throw UsageError(config_location(path, entry.line) + ": " + entry.key +
                       " takes one value, not an array");
    for (const ConfigValue& value : entry.values) {
      std::string word = value.text;
      if (flag.help.value.empty()) {  // a flag without a value: true gives it
        if (!value.boolean)
          throw about_key(path, value.line, entry.key,
                          "--" + entry.key + " wants true or false, not '" + word + "'");
        if (word == "true") flag.apply({});
        continue;
      }
      if (value.boolean) {
        auto words = boolean_words(flag.help.value);
        if (!words)
          throw about_key(path, value.line, entry.key,
                          "--" + entry.key + " wants " + flag.help.value + ", not " + value.text);
        word = value.text == "true" ? words->first : words->second;
      }
      try {
        flag.apply(word);
      } catch (const UsageError& e) {
        throw about_key(path, value.line, entry.key, e.what());
      } catch (const std::invalid_argument& e) {  // Address::parse, the program's own flags
        throw about_key(path, value.line, entry.key, e.what());
      }
    }
  }
}

// parse_command_line(), for prefork_main() too: with the handler, what only
// the handler decides is checked with the rest; `quiet` (a reload) prints
// nothing and leaves the error in CommandLine::error.
CommandLine parse(const std::vector<std::string>& arguments, const CommandLineDefaults& defaults,
                  const Handler* handler, bool quiet) {
  CommandLine result;
  ServerConfig config;
  config.stats_name = defaults.stats_name;
  config.model = defaults.model;
  config.max_message = defaults.max_message;
  Requests requests;
  const std::vector<FlagGroup> groups = server_flags(config, requests, defaults);

  po::options_description options;
  std::map<std::string, const Flag*> by_name;
  for (const FlagGroup& group : groups) {
    std::vector<flags::Help> section;
    for (const Flag& flag : group.flags) {
      const std::string key = flag.help.name.substr(0, flag.help.name.find(','));
      if (key.empty() || !by_name.emplace(key, &flag).second)
        throw std::invalid_argument(defaults.program + ": the flag '--" + key +
                                    "' is defined twice or has no name");
      section.push_back(flag.help);
    }
    options.add(flags::section(group.title, section));
  }

  // After the first `--`: the spawned worker program's arguments. By
  // default a spawned worker is this program re-run with our arguments.
  std::vector<std::string> words = arguments;
  auto dashes = std::find(words.begin(), words.end(), "--");
  const bool worker_args_given = dashes != words.end();
  std::vector<std::string> after_dashes(worker_args_given ? dashes + 1 : dashes, words.end());
  config.worker_args = words;
  words.erase(dashes, words.end());

  try {
    const po::parsed_options parsed = flags::parse(words, options);
    // --help and --version win over any bad value.
    for (const po::option& option : parsed.options)
      if (option.string_key == "help" || option.string_key == "version")
        by_name.at(option.string_key)->apply({});
    if (requests.help) {
      if (!quiet) print_help(defaults, options);
      return result;
    }
    if (requests.version) {
      if (!quiet) std::printf("%s (prefork %s)\n", defaults.program.c_str(), PREFORK_VERSION);
      return result;
    }
    // The program's own options from their initial values (a reload reads
    // again into the same handler), then the file, so that the command
    // line's flags win whatever their order: a later value replaces an
    // earlier one.
    for (const ExtraOption& option : defaults.options)
      if (option.initial) option.apply(*option.initial);
    bool listeners_given = false;
    for (const po::option& option : parsed.options) {
      if (option.string_key.empty())
        throw UsageError("unexpected argument '" + option.value.at(0) + "'");
      const Flag& flag = *by_name.at(option.string_key);
      if (!flag.file_key) flag.apply(option.value.empty() ? "" : option.value[0]);
      listeners_given = listeners_given || flag.repeatable;
    }
    if (!requests.config_file.empty()) apply_file(requests.config_file, by_name);
    if (listeners_given) config.listeners.clear();
    for (const po::option& option : parsed.options) {
      const Flag& flag = *by_name.at(option.string_key);
      if (!flag.file_key) continue;
      try {
        flag.apply(option.value.empty() ? "" : option.value[0]);
      } catch (const std::invalid_argument& e) {  // Address::parse, the program's own flags
        std::string message = e.what();
        if (message.find("--" + option.string_key) == std::string::npos)
          message = "--" + option.string_key + ": " + message;
        throw UsageError(message);
      }
    }
    if (config.listeners.empty()) config.listeners = defaults.listeners;
    if (!config.worker_exe.empty() || worker_args_given) config.worker_args = after_dashes;
    if (std::string error = config_error(config, handler); !error.empty()) throw UsageError(error);
  } catch (const UsageError& e) {
    result.error = e.what();
    result.exit_status = quiet ? exit_usage : flags::usage_error(defaults.program, e.what());
    return result;
  }
  if (requests.check_only) {
    if (!quiet) std::printf("configuration ok\n");
    return result;
  }
  // The same words and defaults, read again (the file too) when asked.
  auto again = [arguments, defaults, handler] { return parse(arguments, defaults, handler, true); };
  config.reload = [again](std::string& error) -> std::optional<ServerConfig> {
    CommandLine next = again();
    if (!next.config) error = next.error;
    return std::move(next.config);
  };
  result.reload = again;
  result.config = std::move(config);
  return result;
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults) {
  return parse(std::vector<std::string>(argv + 1, argv + argc), defaults, nullptr, false);
}

int prefork_main(int argc, char** argv, Handler& handler, const CommandLineDefaults& defaults) {
  if (started_as_worker()) {
    // A spawned worker is this program run again with the master's
    // arguments: the program's own options (defaults.options) must set up
    // its handler as they did the master's (a forked worker has the copy).
    if (!defaults.options.empty())
      parse(std::vector<std::string>(argv + 1, argv + argc), defaults, &handler, true);
    return serve_as_worker(handler);
  }
  CommandLine command_line =
      parse(std::vector<std::string>(argv + 1, argv + argc), defaults, &handler, false);
  if (!command_line.config) return command_line.exit_status;
  return serve(*command_line.config, handler);
}

}  // namespace prefork
