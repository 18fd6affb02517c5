// A fixed-size log-linear histogram of latencies (or any non-negative
// integers), in the manner of HdrHistogram.
//
// Buckets: values below 2048 each have their own bucket (exact). Above, each
// power of two [2^m, 2^(m+1)) is split into 1024 equal sub-buckets, so a
// bucket is never wider than 1/1024 of the values it holds.
//
// Precision guarantee: percentile(p) returns r with v <= r <= v + v/1024
// (about 0.1%, three significant digits), where v is the recorded value of
// rank ceil(p/100 * count()); r is exact for values below 2048. min(), max()
// and mean() are exact. With values in nanoseconds, values up to
// highest_trackable (2^42 - 1 ns, about 73 minutes) keep that guarantee;
// larger ones are counted as highest_trackable in percentiles.
//
// Memory: 33,796 64-bit counters (264 KiB), in the object itself: no heap,
// fixed size, standard layout. Allocate it once (not on a small stack).
//
// Counter is std::uint64_t (Histogram: one thread) or
// std::atomic<std::uint64_t> (SharedHistogram: placed in shared memory with
// placement new, written by one process with relaxed load+store, no locked
// instruction, and read by others). A reader of a histogram that is being
// written takes a consistent copy with Histogram::merge() first: merge
// derives the count from the buckets it copies.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace prefork {

template <class Counter>
class BasicHistogram {
  static_assert(std::is_same_v<Counter, std::uint64_t> ||
                    std::is_same_v<Counter, std::atomic<std::uint64_t>>,
                "Counter is std::uint64_t or std::atomic<std::uint64_t>");

 public:
  static constexpr unsigned exact_bits = 11;  // values below 2^11 are exact
  static constexpr unsigned value_bits = 42;
  static constexpr std::uint64_t highest_trackable = (std::uint64_t{1} << value_bits) - 1;
  static constexpr double relative_precision = 1.0 / 1024;
  static constexpr std::size_t bucket_count =
      (std::size_t{1} << exact_bits) + (std::size_t{value_bits - exact_bits} << (exact_bits - 1));

  // For the writer (one thread, or one process for SharedHistogram).
  void record(std::uint64_t value) noexcept {
    add(counts_[index_of(value)], 1);
    add(total_, 1);
    add(sum_, value);
    if (value < load(min_)) store(min_, value);
    if (value > load(max_)) store(max_, value);
  }

  // Adds every value recorded in `other`. Safe while `other` is being
  // written by another thread or process: the count added is the sum of the
  // buckets copied, so this histogram stays consistent.
  template <class OtherCounter>
  void merge(const BasicHistogram<OtherCounter>& other) noexcept {
    std::uint64_t added = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      const std::uint64_t n = load(other.counts_[i]);
      if (n == 0) continue;
      add(counts_[i], n);
      added += n;
    }
    if (added == 0) return;
    add(total_, added);
    add(sum_, load(other.sum_));
    store(min_, std::min(load(min_), load(other.min_)));
    store(max_, std::max(load(max_), load(other.max_)));
  }

  // Becomes a copy of `other`, consistent as merge() is (its count is the
  // sum of the buckets copied) and cheaper than reset() + merge().
  template <class OtherCounter>
  void copy(const BasicHistogram<OtherCounter>& other) noexcept {
    std::uint64_t copied = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      const std::uint64_t n = load(other.counts_[i]);
      store(counts_[i], n);
      copied += n;
    }
    store(total_, copied);
    store(sum_, copied == 0 ? 0 : load(other.sum_));
    store(min_, copied == 0 ? std::numeric_limits<std::uint64_t>::max() : load(other.min_));
    store(max_, copied == 0 ? 0 : load(other.max_));
  }

  // What `*this` holds beyond `earlier`, an older copy of the same
  // histogram (the values recorded in between). min() and max() become the
  // bounds of the lowest and highest bucket left, within the precision.
  void subtract(const BasicHistogram& earlier) noexcept {
    std::uint64_t removed = 0;
    std::size_t lowest = bucket_count, highest = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      const std::uint64_t now = load(counts_[i]), before = std::min(now, load(earlier.counts_[i]));
      store(counts_[i], now - before);
      removed += before;
      if (now - before == 0) continue;
      lowest = std::min(lowest, i);
      highest = i;
    }
    store(total_, load(total_) - std::min(load(total_), removed));
    store(sum_, load(sum_) - std::min(load(sum_), load(earlier.sum_)));
    store(min_,
          lowest == bucket_count ? std::numeric_limits<std::uint64_t>::max() : lowest_in(lowest));
    store(max_, lowest == bucket_count ? 0 : highest_in(highest));
  }

  void reset() noexcept {
    for (auto& c : counts_) store(c, 0);
    store(total_, 0);
    store(sum_, 0);
    store(min_, std::numeric_limits<std::uint64_t>::max());
    store(max_, 0);
  }

  // For readers.
  std::uint64_t count() const noexcept { return load(total_); }
  std::uint64_t min() const noexcept { return count() == 0 ? 0 : load(min_); }
  std::uint64_t max() const noexcept { return load(max_); }
  // Of every value recorded (exact, unlike mean() * count()).
  std::uint64_t sum() const noexcept { return load(sum_); }
  double mean() const noexcept {
    const std::uint64_t n = count();
    return n == 0 ? 0.0 : static_cast<double>(load(sum_)) / static_cast<double>(n);
  }

  // How many recorded values are at most `value`, counting whole buckets:
  // values within the bucket precision above `value` may be included.
  std::uint64_t count_at_most(std::uint64_t value) const noexcept {
    const std::size_t last = index_of(value);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i <= last; ++i) n += load(counts_[i]);
    return n;
  }

  // The value below or at which p percent of the recorded values lie
  // (p in [0, 100]; 0 gives min(), 100 gives max()), within the precision
  // stated above. 0 when empty.
  std::uint64_t percentile(double p) const noexcept {
    const std::uint64_t n = count();
    if (n == 0) return 0;
    p = std::clamp(p, 0.0, 100.0);
    // The relative nudge keeps 99.9% of 1000 at rank 999 despite rounding.
    const double exact = p / 100.0 * static_cast<double>(n);
    std::uint64_t rank = static_cast<std::uint64_t>(std::ceil(exact - exact * 1e-12));
    rank = std::clamp<std::uint64_t>(rank, 1, n);
    if (rank == 1) return min();  // both ends are known exactly
    if (rank == n) return max();
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      seen += load(counts_[i]);
      if (seen < rank) continue;
      // Within [min, max]: exact at both ends. A reader racing the writer may
      // see min above max for a moment; then the bucket bound stands.
      const std::uint64_t value = highest_in(i), low = min(), high = max();
      return low <= high ? std::clamp(value, low, high) : value;
    }
    return max();  // the writer was adding to the buckets as we read them
  }

 private:
  template <class>
  friend class BasicHistogram;

  static constexpr std::size_t half_range() noexcept { return std::size_t{1} << (exact_bits - 1); }

  static constexpr std::size_t index_of(std::uint64_t value) noexcept {
    value = std::min(value, highest_trackable);
    if (value < (std::uint64_t{1} << exact_bits)) return static_cast<std::size_t>(value);
    const unsigned magnitude = 63 - static_cast<unsigned>(std::countl_zero(value));
    const unsigned shift = magnitude - (exact_bits - 1);  // keeps the top 11 bits
    return (std::size_t{1} << exact_bits) + (magnitude - exact_bits) * half_range() +
           static_cast<std::size_t>(value >> shift) - half_range();
  }

  // The smallest value that lands in bucket `index`.
  static constexpr std::uint64_t lowest_in(std::size_t index) noexcept {
    return index == 0 ? 0 : highest_in(index - 1) + 1;
  }

  // The largest value that lands in bucket `index`.
  static constexpr std::uint64_t highest_in(std::size_t index) noexcept {
    if (index < (std::size_t{1} << exact_bits)) return index;
    const std::size_t above = index - (std::size_t{1} << exact_bits);
    const unsigned shift = static_cast<unsigned>(above / half_range()) + 1;
    const std::uint64_t top = above % half_range() + half_range();
    return ((top + 1) << shift) - 1;
  }

  static std::uint64_t load(const std::uint64_t& c) noexcept { return c; }
  static std::uint64_t load(const std::atomic<std::uint64_t>& c) noexcept {
    return c.load(std::memory_order_relaxed);
  }
  static void store(std::uint64_t& c, std::uint64_t v) noexcept { c = v; }
  static void store(std::atomic<std::uint64_t>& c, std::uint64_t v) noexcept {
    c.store(v, std::memory_order_relaxed);
  }
  // Single writer: a plain load and store, never a read-modify-write.
  static void add(Counter& c, std::uint64_t n) noexcept { store(c, load(c) + n); }

  Counter counts_[bucket_count]{};
  Counter total_{0};
  Counter sum_{0};
  Counter min_{std::numeric_limits<std::uint64_t>::max()};
  Counter max_{0};
};

using Histogram = BasicHistogram<std::uint64_t>;
using SharedHistogram = BasicHistogram<std::atomic<std::uint64_t>>;

static_assert(std::is_standard_layout_v<Histogram> && std::is_trivially_copyable_v<Histogram>);
static_assert(std::is_standard_layout_v<SharedHistogram> &&
              std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(Histogram) == sizeof(SharedHistogram));

}  // namespace prefork
