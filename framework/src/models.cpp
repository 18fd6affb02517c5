#include <prefork/server.hpp>

#include <vector>

namespace prefork {

std::string_view model_name(Model model) noexcept {
  switch (model) {
    case Model::event:
      return "event";
    case Model::iterative:
      return "iterative";
    case Model::fork_per_connection:
      return "fork-per-connection";
    case Model::thread_per_connection:
      return "thread-per-connection";
    case Model::prefork:
      return "prefork";
    case Model::prethreaded:
      return "prethreaded";
    case Model::hybrid:
      return "hybrid";
  }
  return "?";
}

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

namespace {
constexpr Model all_models[] = {Model::event,
                                Model::iterative,
                                Model::fork_per_connection,
                                Model::thread_per_connection,
                                Model::prefork,
                                Model::prethreaded,
                                Model::hybrid};
constexpr Accept all_accepts[] = {Accept::automatic, Accept::shared,    Accept::lock, Accept::flock,
                                  Accept::reuseport, Accept::exclusive, Accept::pass, Accept::main};
}  // namespace

std::optional<Model> model_from_name(std::string_view name) noexcept {
  for (Model model : all_models)
    if (model_name(model) == name) return model;
  return std::nullopt;
}

std::optional<Accept> accept_from_name(std::string_view name) noexcept {
  for (Accept accept : all_accepts)
    if (accept_name(accept) == name) return accept;
  return std::nullopt;
}

std::optional<Accept> resolve_accept(const ServerConfig& config, std::string& why) {
  struct Rule {
    Accept fallback;
    std::vector<Accept> allowed;
  };
  Rule rule{Accept::shared, {Accept::shared}};  // the one-process models
  switch (config.model) {
    case Model::event:
      rule = {Accept::exclusive, {Accept::exclusive, Accept::reuseport}};
      break;
    case Model::prefork:
      rule = {Accept::shared,
              {Accept::shared, Accept::lock, Accept::flock, Accept::reuseport, Accept::exclusive,
               Accept::pass}};
      break;
    case Model::prethreaded:
      rule = {Accept::lock, {Accept::lock, Accept::main}};
      break;
    case Model::hybrid:
      // The processes take turns by this strategy; in each, one thread
      // accepts and queues for the others.
      rule = {Accept::lock,
              {Accept::shared, Accept::lock, Accept::flock, Accept::reuseport, Accept::exclusive}};
      break;
    default:
      break;
  }
  if (config.accept == Accept::automatic) return rule.fallback;
  for (Accept allowed : rule.allowed)
    if (allowed == config.accept) return config.accept;
  why = "--accept ";
  why.append(accept_name(config.accept)).append(" does not apply to --model ");
  why.append(model_name(config.model)).append(" (it takes:");
  for (Accept allowed : rule.allowed) why.append(" ").append(accept_name(allowed));
  why.append(")");
  return std::nullopt;
}

}  // namespace prefork
