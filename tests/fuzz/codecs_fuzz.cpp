// The framing codecs on any bytes (the first ones choose the codec and the
// limit): decode() never reads outside its input, answers a message that
// lies within it and within the limit, and finds the same messages however
// the bytes are split into reads (TCP's "sticky packets" both ways).
#include <prefork/codec.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::unique_ptr<prefork::Codec> codec_for(std::uint8_t choice) {
  using prefork::LengthPrefixCodec;
  static constexpr unsigned widths[] = {1, 2, 4, 8};
  switch (choice % 10) {
    case 8:
      return std::make_unique<prefork::LineCodec>();
    case 9:
      return std::make_unique<prefork::RawCodec>();
    default:
      return std::make_unique<LengthPrefixCodec>(
          widths[choice % 4],
          choice % 8 < 4 ? LengthPrefixCodec::Endian::big : LengthPrefixCodec::Endian::little);
  }
}

void check(bool ok) {
  if (!ok) std::abort();
}

// The messages found in `input` read in pieces cut after the offsets in
// `cuts` (none: all at once), as the runtime buffers them; stops at the
// first too_large.
std::vector<std::string> decode_all(const prefork::Codec& codec, std::string_view input,
                                    std::size_t limit, const std::vector<std::size_t>& cuts) {
  std::vector<std::string> messages;
  std::string buffered;
  std::size_t given = 0;
  std::size_t next_cut = 0;
  while (given < input.size()) {
    std::size_t end = input.size();
    if (next_cut < cuts.size()) end = std::min(end, std::max(given + 1, cuts[next_cut++]));
    buffered.append(input.substr(given, end - given));
    given = end;
    while (!buffered.empty()) {
      const prefork::Decoded d = codec.decode(buffered, limit);
      if (d.status == prefork::Decoded::Status::too_large) {
        messages.push_back("<too large>");
        return messages;
      }
      if (d.status == prefork::Decoded::Status::need_more) break;
      check(d.consumed > 0 && d.consumed <= buffered.size());
      check(d.message.size() <= limit);
      check(d.message.data() >= buffered.data() &&
            d.message.data() + d.message.size() <= buffered.data() + buffered.size());
      messages.emplace_back(d.message);
      buffered.erase(0, d.consumed);
    }
  }
  return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const auto codec = codec_for(data[0]);
  const std::size_t limit = 1 + (static_cast<std::size_t>(data[1]) << 8 | data[2]);
  const std::size_t cut_count = data[3] % 8;
  std::string_view rest(reinterpret_cast<const char*>(data) + 4, size - 4);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < cut_count && !rest.empty(); ++i) {
    cuts.push_back(static_cast<std::uint8_t>(rest.front()));
    rest.remove_prefix(1);
  }
  std::sort(cuts.begin(), cuts.end());
  const auto whole = decode_all(*codec, rest, limit, {});
  // RawCodec's messages are the reads themselves: only the others must not care.
  if (data[0] % 10 != 9) check(decode_all(*codec, rest, limit, cuts) == whole);
  return 0;
}
