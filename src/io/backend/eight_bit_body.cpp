#include "io/backend/eight_bit_body.hpp"

#include "mime/downgrade.hpp"

namespace smtplb::io {

namespace {
constexpr std::size_t kChunk = 65536;
}

SevenBitBody seven_bit_body(const proto::BodySource& body, bool convert) {
    using Outcome = SevenBitBody::Outcome;
    SevenBitBody result;
    std::string scratch;
    bool eight_bit = false;
    for (std::uint64_t offset = 0; offset < body.size() && !eight_bit;) {
        auto chunk = body.chunk_at(offset, kChunk, scratch);
        if (chunk.empty()) return {.outcome = Outcome::ReadFailed};
        eight_bit = mime::has_8bit(chunk);
        offset += chunk.size();
    }
    if (!eight_bit) return result;
    if (!convert) {
        result.outcome = Outcome::Refused;
        result.reason = "8-bit message, backend does not announce 8BITMIME (convert_8bit = false)";
        return result;
    }
    mime::DowngradeLimits limits;
    if (body.size() > limits.max_size) {
        result.outcome = Outcome::Refused;
        result.reason = "8-bit message too large to convert";
        return result;
    }
    std::string content;
    content.reserve(static_cast<std::size_t>(body.size()));
    for (std::uint64_t offset = 0; offset < body.size();) {
        auto chunk = body.chunk_at(offset, kChunk, scratch);
        if (chunk.empty()) return {.outcome = Outcome::ReadFailed};
        content.append(chunk);
        offset += chunk.size();
    }
    if (body.form() == proto::BodyForm::Transmission) content = mime::unstuff(content);
    auto converted = mime::downgrade_to_7bit(content, limits);
    if (!converted.ok()) {
        result.outcome = Outcome::Refused;
        result.reason = "8-bit message could not be converted: " + converted.error;
        return result;
    }
    result.outcome = Outcome::Converted;
    result.converted = std::make_unique<proto::StringBody>(std::move(converted.message));
    return result;
}

}  // namespace smtplb::io
