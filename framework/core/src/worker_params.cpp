#include <prefork/core/decimal.hpp>
#include <prefork/core/environment.hpp>
#include <prefork/core/worker_params.hpp>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

namespace prefork {

namespace {

namespace name {
constexpr const char* slot = "PREFORK_SLOT";
constexpr const char* generation = "PREFORK_GENERATION";
constexpr const char* master_pid = "PREFORK_MASTER_PID";
constexpr const char* stats = "PREFORK_STATS";
constexpr const char* model = "PREFORK_MODEL";
constexpr const char* accept = "PREFORK_ACCEPT";
constexpr const char* threads = "PREFORK_THREADS";
constexpr const char* max_message = "PREFORK_MAX_MESSAGE";
constexpr const char* max_connections = "PREFORK_MAX_CONNECTIONS";
constexpr const char* graceful_timeout_ms = "PREFORK_GRACEFUL_TIMEOUT_MS";
constexpr const char* idle_timeout_ms = "PREFORK_IDLE_TIMEOUT_MS";
constexpr const char* read_timeout_ms = "PREFORK_READ_TIMEOUT_MS";
constexpr const char* write_timeout_ms = "PREFORK_WRITE_TIMEOUT_MS";
// "IDLE,READ,WRITE;..." in ms, one per listener; absent: none of its own.
constexpr const char* listener_timeouts_ms = "PREFORK_LISTENER_TIMEOUTS_MS";
constexpr const char* max_requests = "PREFORK_MAX_REQUESTS";
constexpr const char* worker_stats = "PREFORK_WORKER_STATS";  // "0": counting off
constexpr const char* log_level = "PREFORK_LOG_LEVEL";
constexpr const char* log_format = "PREFORK_LOG_FORMAT";
constexpr const char* log_file = "PREFORK_LOG_FILE";  // empty: stderr
constexpr const char* run_as = "PREFORK_RUN_AS";      // "UID:GID:G1,G2,..."; absent: none
constexpr const char* trace = "PREFORK_TRACE";        // --trace: time 0 in ns; absent: off
}  // namespace name

const char* get(const WorkerParams::Lookup& lookup, const char* variable) {
  return lookup ? lookup(variable) : std::getenv(variable);
}

std::string_view required(const WorkerParams::Lookup& lookup, const char* variable) {
  const char* value = get(lookup, variable);
  if (value == nullptr || *value == '\0')
    throw std::runtime_error(std::string("missing ") + variable + " in the environment");
  return value;
}

std::uint64_t number(const WorkerParams::Lookup& lookup, const char* variable) {
  std::string_view text = required(lookup, variable);
  auto value = parse_decimal<std::uint64_t>(text);
  if (!value)
    throw std::runtime_error(std::string(variable) + " is not a number: '" + std::string(text) +
                             "'");
  return *value;
}

std::string run_as_text(const Credentials& credentials) {
  std::string text = std::to_string(credentials.uid) + ':' + std::to_string(credentials.gid) + ':';
  for (std::size_t i = 0; i < credentials.groups.size(); ++i)
    text.append(i == 0 ? "" : ",").append(std::to_string(credentials.groups[i]));
  return text;
}

std::optional<Credentials> run_as_from(const WorkerParams::Lookup& lookup) {
  const char* value = get(lookup, name::run_as);
  if (value == nullptr) return std::nullopt;
  const std::string_view text(value);
  auto id = [&](std::string_view part) {
    auto value = parse_decimal<std::uint32_t>(part);
    if (!value)
      throw std::runtime_error(std::string(name::run_as) + " is not UID:GID:GROUP,...: '" +
                               std::string(text) + "'");
    return *value;
  };
  // UID:GID:GROUPS, GROUPS comma-separated and possibly empty.
  const std::size_t first = text.find(':');
  const std::size_t second = first == text.npos ? text.npos : text.find(':', first + 1);
  if (second == text.npos) id({});  // throws
  Credentials credentials{.uid = id(text.substr(0, first)),
                          .gid = id(text.substr(first + 1, second - first - 1)),
                          .groups = {}};
  for (std::size_t at = second + 1; at < text.size();) {
    const std::size_t end = std::min(text.find(',', at), text.size());
    credentials.groups.push_back(id(text.substr(at, end - at)));
    at = end + 1;
    if (end + 1 == text.size()) id({});  // a trailing comma
  }
  return credentials;
}

std::string listener_timeouts_text(const std::vector<ConnectionTimeouts>& all) {
  std::string text;
  for (const ConnectionTimeouts& each : all) {
    if (!text.empty()) text += ';';
    text += std::to_string(each.idle.count());
    text += ',';
    text += std::to_string(each.read.count());
    text += ',';
    text += std::to_string(each.write.count());
  }
  return text;
}

std::vector<ConnectionTimeouts> listener_timeouts_from(const WorkerParams::Lookup& lookup) {
  const char* value = get(lookup, name::listener_timeouts_ms);
  std::vector<ConnectionTimeouts> all;
  if (value == nullptr) return all;
  const std::string_view text(value);
  auto ms = [&](std::string_view part) {
    auto number = parse_decimal<std::uint64_t>(part);
    if (!number)
      throw std::runtime_error(std::string(name::listener_timeouts_ms) +
                               " is not IDLE,READ,WRITE;...: '" + std::string(text) + "'");
    return std::chrono::milliseconds(*number);
  };
  for (std::size_t at = 0; at <= text.size();) {
    const std::size_t end = std::min(text.find(';', at), text.size());
    const std::string_view entry = text.substr(at, end - at);
    const std::size_t first = entry.find(',');
    const std::size_t second = first == entry.npos ? entry.npos : entry.find(',', first + 1);
    if (second == entry.npos) ms({});  // throws
    all.push_back({ms(entry.substr(0, first)), ms(entry.substr(first + 1, second - first - 1)),
                   ms(entry.substr(second + 1))});
    at = end + 1;
  }
  return all;
}

}  // namespace

std::vector<std::string> WorkerParams::to_environment() const {
  auto entry = [](const char* variable, std::string_view value) {
    std::string out(variable);
    out += '=';
    out += value;
    return out;
  };
  std::vector<std::string> entries{
      entry(name::slot, std::to_string(slot)),
      entry(name::generation, std::to_string(generation)),
      entry(name::master_pid, std::to_string(master_pid)),
      entry(name::stats, stats_name),
      entry(name::model, model_name(model)),
      entry(name::accept, accept_name(accept)),
      entry(name::threads, std::to_string(threads)),
      entry(name::max_message, std::to_string(max_message)),
      entry(name::max_connections, std::to_string(max_connections)),
      entry(name::graceful_timeout_ms, std::to_string(graceful_timeout.count())),
      entry(name::idle_timeout_ms, std::to_string(idle_timeout.count())),
      entry(name::read_timeout_ms, std::to_string(read_timeout.count())),
      entry(name::write_timeout_ms, std::to_string(write_timeout.count())),
      entry(name::max_requests, std::to_string(max_requests)),
      entry(name::worker_stats, worker_stats ? "1" : "0"),
      entry(name::log_level, log_level_name(log.level)),
      entry(name::log_format, log_format_name(log.format)),
      entry(name::log_file, log.file),
  };
  if (run_as) entries.push_back(entry(name::run_as, run_as_text(*run_as)));
  if (!listener_timeouts.empty())
    entries.push_back(entry(name::listener_timeouts_ms, listener_timeouts_text(listener_timeouts)));
  if (trace_origin_ns) entries.push_back(entry(name::trace, std::to_string(*trace_origin_ns)));
  return entries;
}

WorkerParams WorkerParams::from_environment(const Lookup& lookup) {
  auto model_value = model_from_name(required(lookup, name::model));
  auto accept_value = accept_from_name(required(lookup, name::accept));
  if (!model_value) throw std::runtime_error("unknown PREFORK_MODEL");
  if (!accept_value || *accept_value == Accept::automatic)
    throw std::runtime_error("unknown PREFORK_ACCEPT");
  auto level = log_level_from_name(required(lookup, name::log_level));
  if (!level) throw std::runtime_error("unknown PREFORK_LOG_LEVEL");
  auto format = log_format_from_name(required(lookup, name::log_format));
  if (!format) throw std::runtime_error("unknown PREFORK_LOG_FORMAT");
  // Present but empty when the log goes to stderr.
  const char* file = get(lookup, name::log_file);
  if (file == nullptr) throw std::runtime_error("missing PREFORK_LOG_FILE in the environment");
  return WorkerParams{
      .slot = static_cast<unsigned>(number(lookup, name::slot)),
      .generation = number(lookup, name::generation),
      .master_pid = static_cast<pid_t>(number(lookup, name::master_pid)),
      .stats_name = std::string(required(lookup, name::stats)),
      .model = *model_value,
      .accept = *accept_value,
      .threads = static_cast<unsigned>(number(lookup, name::threads)),
      .max_message = static_cast<std::size_t>(number(lookup, name::max_message)),
      .max_connections = static_cast<unsigned>(number(lookup, name::max_connections)),
      .graceful_timeout = std::chrono::milliseconds(number(lookup, name::graceful_timeout_ms)),
      .idle_timeout = std::chrono::milliseconds(number(lookup, name::idle_timeout_ms)),
      .read_timeout = std::chrono::milliseconds(number(lookup, name::read_timeout_ms)),
      .write_timeout = std::chrono::milliseconds(number(lookup, name::write_timeout_ms)),
      .max_requests = number(lookup, name::max_requests),
      .worker_stats = std::string_view(required(lookup, name::worker_stats)) != "0",
      .log = LogSettings{.level = *level, .format = *format, .file = file},
      .run_as = run_as_from(lookup),
      .listener_timeouts = listener_timeouts_from(lookup),
      .trace_origin_ns = get(lookup, name::trace) == nullptr
                             ? std::nullopt
                             : std::optional<std::uint64_t>(number(lookup, name::trace)),
  };
}

bool WorkerParams::in_environment(const Lookup& lookup) {
  return get(lookup, name::slot) != nullptr && get(lookup, env::listen_fds) != nullptr;
}

}  // namespace prefork
