// What makes a ServerConfig unusable: serve() and the command line refuse
// the same configurations, with the same one-line reason and exit status 2.
#pragma once

#include <prefork/handler.hpp>
#include <prefork/server.hpp>

#include <string>

namespace prefork {

// Empty when `config` can be served; otherwise what is wrong, in one line
// that names the flags involved: no listeners, an accept strategy the model
// does not take, a worker program without spawn mode, max_start_failures 0,
// or, when `handler` is given, a ConnectionHandler under a model that is not
// blocking (the command line, which knows no handler yet, passes none).
std::string config_error(const ServerConfig& config, const Handler* handler = nullptr);

}  // namespace prefork
