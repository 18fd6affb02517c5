#include <prefork/models.hpp>

#include <algorithm>
#include <array>

namespace prefork {

namespace {

constexpr Accept event_accepts[] = {Accept::exclusive, Accept::reuseport};
constexpr Accept single_accepts[] = {Accept::shared};
constexpr Accept prefork_accepts[] = {Accept::shared,    Accept::lock,      Accept::flock,
                                      Accept::reuseport, Accept::exclusive, Accept::pass};
constexpr Accept prethreaded_accepts[] = {Accept::lock, Accept::main};
// The processes take turns by one of these; in each, one thread accepts and
// queues for the others.
constexpr Accept hybrid_accepts[] = {Accept::shared, Accept::lock, Accept::flock, Accept::reuseport,
                                     Accept::exclusive};

// clang-format off
constexpr std::array<ModelFacts, 7> table{{
  //  model                         name                     summary
  //  pool   shared  blocking threads  default accept     accepts
  {Model::event, "event", "one epoll loop per worker process, many connections each",
   true, false, false, false, Accept::exclusive, event_accepts},
  {Model::iterative, "iterative", "one process, one connection at a time",
   false, false, true, false, Accept::shared, single_accepts},
  {Model::fork_per_connection, "fork-per-connection", "a new child process per connection",
   false, true, true, false, Accept::shared, single_accepts},
  {Model::thread_per_connection, "thread-per-connection", "a new thread per connection",
   false, true, true, false, Accept::shared, single_accepts},
  {Model::prefork, "prefork", "a pool of processes, each serving one connection at a time",
   true, false, true, false, Accept::shared, prefork_accepts},
  {Model::prethreaded, "prethreaded", "one process, a pool of threads",
   false, true, true, true, Accept::lock, prethreaded_accepts},
  {Model::hybrid, "hybrid", "a pool of processes, each with a pool of threads",
   true, true, true, true, Accept::lock, hybrid_accepts},
}};
// clang-format on

constexpr Accept all_accepts[] = {Accept::automatic, Accept::shared,    Accept::lock, Accept::flock,
                                  Accept::reuseport, Accept::exclusive, Accept::pass, Accept::main};

}  // namespace

std::span<const ModelFacts> all_model_facts() noexcept { return table; }

const ModelFacts& facts(Model model) noexcept {
  for (const ModelFacts& entry : table)
    if (entry.model == model) return entry;
  return table[0];
}

std::string_view model_name(Model model) noexcept { return facts(model).name; }

std::string_view accept_name(Accept accept) noexcept {
  switch (accept) {
    case Accept::automatic:
      return "auto";
    case Accept::shared:
      return "shared";
    case Accept::lock:
      return "lock";
    case Accept::flock:
      return "flock";
    case Accept::reuseport:
      return "reuseport";
    case Accept::exclusive:
      return "exclusive";
    case Accept::pass:
      return "pass";
    case Accept::main:
      return "main";
  }
  return "?";
}

std::optional<Model> model_from_name(std::string_view name) noexcept {
  for (const ModelFacts& entry : table)
    if (entry.name == name) return entry.model;
  return std::nullopt;
}

std::optional<Accept> accept_from_name(std::string_view name) noexcept {
  for (Accept accept : all_accepts)
    if (accept_name(accept) == name) return accept;
  return std::nullopt;
}

std::optional<Accept> resolve_accept(Model model, Accept accept, std::string& why) {
  const ModelFacts& rule = facts(model);
  if (accept == Accept::automatic) return rule.default_accept;
  for (Accept allowed : rule.accepts)
    if (allowed == accept) return accept;
  why = "--accept ";
  why.append(accept_name(accept)).append(" does not apply to --model ");
  why.append(rule.name).append(" (it takes:");
  for (Accept allowed : rule.accepts) why.append(" ").append(accept_name(allowed));
  why.append(")");
  return std::nullopt;
}

unsigned connection_cap(Model model, Accept accept, unsigned max_connections,
                        unsigned threads) noexcept {
  switch (model) {
    case Model::iterative:
    case Model::prefork:
      return 1;
    case Model::prethreaded:
      if (accept == Accept::lock) return threads;
      return std::min(max_connections, threads);
    case Model::hybrid:
      return std::min(max_connections, threads);
    default:
      return max_connections;
  }
}

std::string describe_models() {
  std::string out;
  for (const ModelFacts& entry : table) {
    std::string line(entry.name);
    line.resize(23, ' ');
    line += entry.summary;
    line += "\n";
    line.append(25, ' ');
    line += "--accept";
    for (Accept accept : entry.accepts) line.append(" ").append(accept_name(accept));
    line.append(" (default ").append(accept_name(entry.default_accept)).append(")");
    if (entry.threads) line.append("; --threads N");
    out += line + "\n";
  }
  return out;
}

}  // namespace prefork
