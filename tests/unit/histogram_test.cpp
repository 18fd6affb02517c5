#define BOOST_TEST_MODULE histogram
#include <boost/test/unit_test.hpp>

#include <prefork/histogram.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <thread>
#include <vector>

using prefork::Histogram;
using prefork::SharedHistogram;

namespace {

// Percentiles in hundredths of a percent, so the expected rank is computed
// with integers: 9990 is p99.9.
constexpr std::uint64_t percentiles[] = {0,    100,  1000, 2500, 5000, 7500,
                                         9000, 9900, 9990, 9999, 10000};

// The rank the header promises: ceil(p/100 * n), at least 1.
std::uint64_t rank_of(std::uint64_t hundredths, std::uint64_t n) {
  return std::max<std::uint64_t>(1, (hundredths * n + 9999) / 10000);
}

// v <= reported <= v + v/1024, the header's guarantee.
bool within_precision(std::uint64_t reported, std::uint64_t v) {
  return reported >= v && reported - v <= v / 1024;
}

// Checks every percentile of `h` against the sorted values it recorded.
void check_against(const Histogram& h, std::vector<std::uint64_t> values) {
  std::sort(values.begin(), values.end());
  BOOST_REQUIRE_EQUAL(h.count(), values.size());
  for (std::uint64_t p : percentiles) {
    const std::uint64_t v = values[rank_of(p, values.size()) - 1];
    const std::uint64_t r = h.percentile(static_cast<double>(p) / 100.0);
    BOOST_TEST_INFO("p" << static_cast<double>(p) / 100.0 << ": expected " << v << ", got " << r);
    BOOST_TEST(within_precision(r, v));
  }
  BOOST_TEST(h.min() == values.front());
  BOOST_TEST(h.max() == values.back());
}

std::unique_ptr<Histogram> make() { return std::make_unique<Histogram>(); }

}  // namespace

BOOST_AUTO_TEST_CASE(empty_reports_zero) {
  auto h = make();
  BOOST_TEST(h->count() == 0u);
  BOOST_TEST(h->min() == 0u);
  BOOST_TEST(h->max() == 0u);
  BOOST_TEST(h->mean() == 0.0);
  BOOST_TEST(h->percentile(50) == 0u);
}

BOOST_AUTO_TEST_CASE(uniform_one_to_a_million) {
  auto h = make();
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) {
    h->record(v);
    values.push_back(v);
  }
  check_against(*h, values);
  BOOST_TEST(h->mean() == 500'000.5);
  // The stated precision is about 0.1%: the median is 500,000 give or take 500.
  BOOST_TEST(h->percentile(50) >= 500'000u);
  BOOST_TEST(h->percentile(50) <= 500'489u);
}

BOOST_AUTO_TEST_CASE(values_below_2048_are_exact) {
  auto h = make();
  for (std::uint64_t v = 0; v < 2048; ++v) h->record(v);
  for (std::uint64_t rank = 1; rank <= 2048; ++rank)
    BOOST_TEST(h->percentile(100.0 * static_cast<double>(rank) / 2048) == rank - 1);
}

BOOST_AUTO_TEST_CASE(constant_values_are_exact) {
  auto h = make();
  for (int i = 0; i < 1000; ++i) h->record(123'456'789);
  for (std::uint64_t p : percentiles)
    BOOST_TEST(h->percentile(static_cast<double>(p) / 100.0) == 123'456'789u);
  BOOST_TEST(h->mean() == 123'456'789.0);
}

BOOST_AUTO_TEST_CASE(two_clusters) {
  // 900 requests at about 100 us and 100 at about 10 ms, in nanoseconds.
  auto h = make();
  std::vector<std::uint64_t> values;
  std::mt19937_64 random(42);
  for (int i = 0; i < 900; ++i) values.push_back(100'000 + random() % 1000);
  for (int i = 0; i < 100; ++i) values.push_back(10'000'000 + random() % 100'000);
  for (auto v : values) h->record(v);
  check_against(*h, values);
  BOOST_TEST(h->percentile(90) < 101'100u);        // rank 900: still the fast cluster
  BOOST_TEST(h->percentile(90.1) >= 10'000'000u);  // rank 901: the slow one
}

BOOST_AUTO_TEST_CASE(precision_across_the_whole_range) {
  // One value v between two far-away neighbours, so clamping to min/max
  // cannot hide a wide bucket: percentile 50 of {v/4, v, 4v} is v's bucket.
  std::mt19937_64 random(7);
  auto h = make();
  for (unsigned magnitude = 0; magnitude < Histogram::value_bits - 2; ++magnitude) {
    for (int k = 0; k < 50; ++k) {
      const std::uint64_t low = std::uint64_t{1} << magnitude;
      const std::uint64_t v = low + random() % low;
      h->reset();
      h->record(v / 4);
      h->record(v);
      h->record(v * 4);
      const std::uint64_t r = h->percentile(50);
      BOOST_TEST_INFO("v " << v << " reported " << r);
      BOOST_TEST(within_precision(r, v));
    }
  }
}

BOOST_AUTO_TEST_CASE(extreme_values) {
  auto h = make();
  const std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
  h->record(0);
  h->record(1);
  h->record(Histogram::highest_trackable);
  h->record(huge);
  BOOST_TEST(h->count() == 4u);
  BOOST_TEST(h->min() == 0u);
  BOOST_TEST(h->max() == huge);  // exact, though the buckets saturate
  BOOST_TEST(h->percentile(0) == 0u);
  BOOST_TEST(h->percentile(25) == 0u);
  BOOST_TEST(h->percentile(50) == 1u);
  BOOST_TEST(within_precision(h->percentile(75), Histogram::highest_trackable));
  BOOST_TEST(h->percentile(100) == huge);
  // An hour in nanoseconds is within the guaranteed range.
  const std::uint64_t hour = 3'600'000'000'000;
  BOOST_TEST(hour <= Histogram::highest_trackable);
  h->reset();
  h->record(1);
  h->record(hour);
  h->record(hour * 2);
  BOOST_TEST(within_precision(h->percentile(50), hour));
}

BOOST_AUTO_TEST_CASE(merge_equals_recording_everything_in_one) {
  auto odd = make(), even = make(), all = make(), merged = make();
  std::vector<std::uint64_t> values;
  std::mt19937_64 random(3);
  for (int i = 0; i < 100'000; ++i) {
    const std::uint64_t v = random() % 50'000'000;
    (i % 2 ? *odd : *even).record(v);
    all->record(v);
    values.push_back(v);
  }
  merged->merge(*odd);
  merged->merge(*even);
  merged->merge(*make());  // an empty one changes nothing, min included
  BOOST_TEST(merged->count() == all->count());
  BOOST_TEST(merged->min() == all->min());
  BOOST_TEST(merged->max() == all->max());
  BOOST_TEST(merged->mean() == all->mean());
  for (std::uint64_t p : percentiles) {
    const double q = static_cast<double>(p) / 100.0;
    BOOST_TEST(merged->percentile(q) == all->percentile(q));
  }
  check_against(*merged, values);
}

BOOST_AUTO_TEST_CASE(shared_histogram_written_by_another_process) {
  // Anonymous shared memory stands in for a named segment: the child is the
  // single writer, the parent reads after it exits.
  void* memory = ::mmap(nullptr, sizeof(SharedHistogram), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  BOOST_REQUIRE(memory != MAP_FAILED);
  auto* shared = new (memory) SharedHistogram;
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    for (std::uint64_t v = 1; v <= 10'000; ++v) shared->record(v * 1000);
    ::_exit(0);  // never back into the test runner
  }
  int status = 0;
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  auto copy = make();
  copy->merge(*shared);
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 1; v <= 10'000; ++v) values.push_back(v * 1000);
  check_against(*copy, values);
  BOOST_TEST(shared->percentile(99) == copy->percentile(99));
  shared->~SharedHistogram();
  ::munmap(memory, sizeof(SharedHistogram));
}

BOOST_AUTO_TEST_CASE(copies_taken_while_writing_are_consistent) {
  auto shared = std::make_unique<SharedHistogram>();
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (std::uint64_t v = 1; v <= 2'000'000; ++v) shared->record(v % 5000 + 1);
    done = true;
  });
  std::uint64_t last = 0;
  do {
    auto copy = make();
    copy->merge(*shared);
    BOOST_TEST(copy->count() >= last);  // a single writer only ever adds
    last = copy->count();
    if (last > 0) BOOST_TEST(copy->percentile(100) <= 5000u);
  } while (!done);
  writer.join();
  BOOST_TEST(shared->count() == 2'000'000u);
}

BOOST_AUTO_TEST_CASE(copy_is_the_same_histogram) {
  auto h = make(), c = make();
  c->record(7);  // overwritten, not added to
  std::mt19937_64 random(5);
  for (int i = 0; i < 10'000; ++i) h->record(random() % 1'000'000);
  c->copy(*h);
  BOOST_TEST(c->count() == h->count());
  BOOST_TEST(c->sum() == h->sum());
  BOOST_TEST(c->min() == h->min());
  BOOST_TEST(c->max() == h->max());
  for (std::uint64_t p : percentiles)
    BOOST_TEST(c->percentile(static_cast<double>(p) / 100) ==
               h->percentile(static_cast<double>(p) / 100));
  c->copy(*make());
  BOOST_TEST(c->count() == 0u);
  BOOST_TEST(c->percentile(99) == 0u);
}

// prefork-top's interval percentiles: a later copy minus an earlier one is
// what was recorded in between.
BOOST_AUTO_TEST_CASE(subtract_leaves_what_was_recorded_in_between) {
  auto before = make(), now = make();
  for (std::uint64_t v = 1; v <= 1000; ++v) now->record(v * 1000);  // 1 us .. 1 ms
  before->copy(*now);
  std::vector<std::uint64_t> later;
  for (std::uint64_t v = 1; v <= 500; ++v) {
    now->record(v * 100'000);  // 0.1 ms .. 50 ms
    later.push_back(v * 100'000);
  }
  now->subtract(*before);
  BOOST_TEST(now->count() == 500u);
  BOOST_TEST(now->sum() == std::uint64_t{500} * 501 / 2 * 100'000);
  for (std::uint64_t p : percentiles) {
    const std::uint64_t v = later[rank_of(p, later.size()) - 1];
    const std::uint64_t r = now->percentile(static_cast<double>(p) / 100.0);
    BOOST_TEST_INFO("p" << static_cast<double>(p) / 100.0 << ": expected " << v << ", got " << r);
    // min and max are bucket bounds now: within the precision either way.
    BOOST_TEST(std::max(r, v) - std::min(r, v) <= v / 1024);
  }
  now->subtract(*now);
  BOOST_TEST(now->count() == 0u);
}

// OpenMetrics' cumulative buckets: exact below 2048, whole buckets above.
BOOST_AUTO_TEST_CASE(count_at_most_is_cumulative) {
  auto h = make();
  for (std::uint64_t v = 0; v < 4000; ++v) h->record(v);
  h->record(1'000'000);
  BOOST_TEST(h->count_at_most(0) == 1u);
  BOOST_TEST(h->count_at_most(999) == 1000u);
  BOOST_TEST(h->count_at_most(2047) == 2048u);
  // 3000 is in a 2-wide bucket [3000, 3001]: 3001 comes with it.
  BOOST_TEST(h->count_at_most(3000) == 3002u);
  BOOST_TEST(h->count_at_most(990'000) == 4000u);
  // 999,999 shares a 512-wide bucket with 1,000,000: a whole bucket counts.
  BOOST_TEST(h->count_at_most(999'999) == 4001u);
  BOOST_TEST(h->count_at_most(1'000'000) == 4001u);
  BOOST_TEST(h->count_at_most(Histogram::highest_trackable) == h->count());
}
