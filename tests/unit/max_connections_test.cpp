// --max-connections' arithmetic: the cap each model holds a worker to, and
// the master's check that a worker at its cap fits in RLIMIT_NOFILE.
#define BOOST_TEST_MODULE unit_max_connections
#include <boost/test/unit_test.hpp>

#include <prefork/models.hpp>

#include "descriptor_limit.hpp"

#include <string>
#include <vector>

using prefork::Accept;
using prefork::connection_cap;
using prefork::Model;

BOOST_AUTO_TEST_CASE(each_model_is_held_to_the_cap_it_can_keep) {
  for (Model model : {Model::event, Model::thread_per_connection, Model::fork_per_connection})
    BOOST_TEST(connection_cap(model, Accept::shared, 500, 4) == 500u);
  // One connection at a time, whatever the flag.
  BOOST_TEST(connection_cap(Model::iterative, Accept::shared, 500, 4) == 1u);
  BOOST_TEST(connection_cap(Model::prefork, Accept::lock, 500, 4) == 1u);
  // The pool's threads, or the flag when it is smaller.
  BOOST_TEST(connection_cap(Model::hybrid, Accept::lock, 500, 4) == 4u);
  BOOST_TEST(connection_cap(Model::hybrid, Accept::lock, 2, 4) == 2u);
  BOOST_TEST(connection_cap(Model::prethreaded, Accept::main, 2, 4) == 2u);
  // Threads that accept themselves: bounded by their number only.
  BOOST_TEST(connection_cap(Model::prethreaded, Accept::lock, 2, 4) == 4u);
}

BOOST_AUTO_TEST_CASE(a_worker_needs_its_cap_its_listeners_and_a_margin) {
  BOOST_TEST(prefork::worker_descriptors_needed(1024, 3) ==
             1024u + 3u + prefork::worker_descriptor_margin);
}

BOOST_AUTO_TEST_CASE(the_warning_names_the_numbers_only_when_short) {
  const std::uint64_t needed = prefork::worker_descriptors_needed(1024, 2);
  BOOST_TEST(prefork::descriptor_shortfall(needed, 1024, 2, 4).empty());
  BOOST_TEST(prefork::descriptor_shortfall(RLIM_INFINITY, 1u << 20, 2, 4).empty());
  const std::string warning = prefork::descriptor_shortfall(needed - 1, 1024, 2, 4);
  BOOST_TEST(!warning.empty());
  std::string needs = "needs up to ", limit = "RLIMIT_NOFILE is ";
  needs += std::to_string(needed);
  limit += std::to_string(needed - 1);
  for (const std::string& part : std::vector<std::string>{"--max-connections 1024 per worker",
                                                          "4096 for 4 workers", needs, limit})
    BOOST_TEST(warning.find(part) != std::string::npos, part << " in: " << warning);
}
