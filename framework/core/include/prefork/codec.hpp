// Framing: where one message ends in the bytes a TCP connection has
// delivered so far. A stream has no message boundaries (TCP's "sticky
// packets": three sends may arrive as one read, one send as three), so a
// codec finds them, and the handler or session sees whole messages however
// the bytes were split or merged.
//
// As Netty's ByteToMessageDecoder, a codec may say "not yet" and is asked
// again when more bytes arrive; the runtime keeps what was not consumed. As
// Twisted's LineReceiver, a message over the limit closes the connection
// (CloseReason::limit_exceeded, counted as an oversized message).
//
// Shipped: LengthPrefixCodec (4-byte big-endian by default, as --framed
// listeners speak; 1, 2, 4 or 8 bytes, either byte order), LineCodec (LF or
// CRLF) and RawCodec (each read is one message, as socketserver's
// recv(1024)). Writing one is a few lines: override decode(), and the
// header/trailer hooks if replies are framed too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prefork {

// The answer of Codec::decode.
struct Decoded {
  enum class Status { message, need_more, too_large };
  Status status = Status::need_more;
  std::string_view message;  // Status::message: the payload, framing stripped
  std::size_t consumed = 0;  // Status::message: bytes to drop, framing included

  static Decoded whole(std::string_view message, std::size_t consumed) noexcept {
    return {Status::message, message, consumed};
  }
  static Decoded need_more() noexcept { return {}; }
  static Decoded too_large() noexcept { return {Status::too_large, {}, 0}; }
};

class Codec {
 public:
  virtual ~Codec() = default;

  // To override: the first message in `input`, the bytes buffered so far
  // (never empty). A message may hold at most `limit` bytes: answer
  // too_large as soon as that is certain (a length header announcing more,
  // a line already longer). Whatever the codec answers, the runtime closes a
  // connection that buffers more than limit + overhead() bytes with no
  // whole message in them.
  virtual Decoded decode(std::string_view input, std::size_t limit) const = 0;

  // May be overridden: how replies are framed. header_size() bytes before
  // each reply message, filled by write_header(payload size), and trailer()
  // after it. The defaults frame nothing. write_header may throw
  // std::length_error for a payload its header cannot describe.
  virtual std::size_t header_size() const noexcept { return 0; }
  virtual void write_header(std::size_t size, char* header) const;
  virtual std::string_view trailer() const noexcept { return {}; }
  // May be overridden: the most bytes of framing around one received
  // message (a header, a delimiter), beyond the limit on its payload.
  virtual std::size_t overhead() const noexcept { return header_size() + trailer().size(); }
};

// Each chunk read from the socket is one message, of at most `limit` bytes
// (a longer chunk is several, as recv(limit) would return them); replies are
// plain bytes.
class RawCodec final : public Codec {
 public:
  Decoded decode(std::string_view input, std::size_t limit) const override;
};

// A length header, then that many bytes (Netty's LengthFieldBasedFrameDecoder
// with offset 0 and no adjustment). Replies carry the same header.
class LengthPrefixCodec final : public Codec {
 public:
  enum class Endian { big, little };
  // `width` is 1, 2, 4 or 8 bytes; throws std::invalid_argument otherwise.
  explicit LengthPrefixCodec(unsigned width = 4, Endian endian = Endian::big);

  Decoded decode(std::string_view input, std::size_t limit) const override;
  std::size_t header_size() const noexcept override { return width_; }
  void write_header(std::size_t size, char* header) const override;

  unsigned width() const noexcept { return width_; }
  Endian endian() const noexcept { return endian_; }

 private:
  std::uint64_t read_length(const char* header) const noexcept;

  unsigned width_;
  Endian endian_;
};

// Lines ending in LF; a CR before the LF is dropped too, so CRLF and LF
// clients are both understood. A reply gets `ending` appended ("\n" by
// default; "\r\n" for protocols that want CRLF).
class LineCodec final : public Codec {
 public:
  explicit LineCodec(std::string ending = "\n");

  Decoded decode(std::string_view input, std::size_t limit) const override;
  std::string_view trailer() const noexcept override { return ending_; }
  std::size_t overhead() const noexcept override { return 2; }  // CR LF

 private:
  std::string ending_;
};

}  // namespace prefork
