#include "mime/downgrade.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace smtplb::mime {

namespace {

// GObject references, released on every path out.
template <typename T>
struct Ref {
    T* p = nullptr;
    explicit Ref(T* object) : p(object) {}
    ~Ref() {
        if (p) g_object_unref(p);
    }
    Ref(const Ref&) = delete;
    Ref& operator=(const Ref&) = delete;
};

void init_gmime() {
    static std::once_flag once;
    std::call_once(once, [] { g_mime_init(); });
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (g_ascii_tolower(text[i]) != prefix[i]) return false;
    return true;
}

std::size_t count_content_types(std::string_view message) {
    std::size_t count = 0;
    for (std::size_t line = 0; line < message.size();) {
        // "Content-Type :" too: the obsolete syntax a parser may accept.
        auto rest = message.substr(line);
        if (starts_with_nocase(rest, "content-type")) {
            auto colon = rest.find_first_not_of(" \t", 12);
            if (colon != std::string_view::npos && rest[colon] == ':') ++count;
        }
        auto lf = message.find('\n', line);
        if (lf == std::string_view::npos) break;
        line = lf + 1;
    }
    return count;
}

bool stream_has_8bit(GMimeStream* stream) {
    if (!stream) return false;
    g_mime_stream_reset(stream);
    char buffer[16384];
    bool found = false;
    for (;;) {
        auto n = g_mime_stream_read(stream, buffer, sizeof buffer);
        if (n <= 0) break;
        if (has_8bit(std::string_view(buffer, static_cast<std::size_t>(n)))) {
            found = true;
            break;
        }
    }
    g_mime_stream_reset(stream);
    return found;
}

bool declared(GMimeObject* object, std::initializer_list<const char*> encodings) {
    const char* value = g_mime_object_get_header(object, "Content-Transfer-Encoding");
    if (!value) return false;
    std::string_view v = value;
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    while (!v.empty() &&
           (v.back() == ' ' || v.back() == '\t' || v.back() == '\r' || v.back() == '\n'))
        v.remove_suffix(1);
    for (const char* e : encodings)
        if (g_ascii_strncasecmp(v.data(), e, v.size()) == 0 && std::strlen(e) == v.size())
            return true;
    return false;
}

class Walker {
  public:
    explicit Walker(const DowngradeLimits& limits) : limits_(limits) {}
    std::string error;
    std::size_t converted = 0;

    void walk(GMimeObject* object, std::size_t depth) {
        if (!object || !error.empty()) return;
        if (depth > limits_.max_depth) {
            error = "MIME nesting deeper than " + std::to_string(limits_.max_depth);
            return;
        }
        if (GMIME_IS_MULTIPART(object)) {
            auto* multipart = GMIME_MULTIPART(object);
            int count = g_mime_multipart_get_count(multipart);
            for (int i = 0; i < count; ++i)
                walk(g_mime_multipart_get_part(multipart, i), depth + 1);
            relabel_container(object);
        } else if (GMIME_IS_MESSAGE_PART(object)) {
            auto* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
            if (inner) walk(g_mime_message_get_mime_part(inner), depth + 1);
            relabel_container(object);
        } else if (GMIME_IS_PART(object)) {
            leaf(GMIME_PART(object));
        }
    }

  private:
    // A container's body is its parts: once they are 7-bit, so is it.
    void relabel_container(GMimeObject* object) {
        if (declared(object, {"8bit", "binary"}))
            g_mime_object_set_header(object, "Content-Transfer-Encoding", "7bit", nullptr);
    }

    void leaf(GMimePart* part) {
        auto encoding = g_mime_part_get_content_encoding(part);
        bool eight_bit =
            encoding == GMIME_CONTENT_ENCODING_8BIT || encoding == GMIME_CONTENT_ENCODING_BINARY;
        if (!eight_bit && (encoding == GMIME_CONTENT_ENCODING_DEFAULT ||
                           encoding == GMIME_CONTENT_ENCODING_7BIT)) {
            auto* content = g_mime_part_get_content(part);
            eight_bit = content && stream_has_8bit(g_mime_data_wrapper_get_stream(content));
        }
        if (!eight_bit) return;  // 7-bit, quoted-printable, base64: left alone
        auto* type = g_mime_object_get_content_type(GMIME_OBJECT(part));
        bool text = !type || g_mime_content_type_is_type(type, "text", "*") ||
                    g_mime_content_type_is_type(type, "message", "*");
        g_mime_part_set_content_encoding(
            part, text ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE : GMIME_CONTENT_ENCODING_BASE64);
        ++converted;
    }

    const DowngradeLimits& limits_;
};

// GMime writes LF line endings; SMTP wants CRLF.
std::string with_crlf(const GByteArray* bytes) {
    std::string out;
    out.reserve(bytes->len + bytes->len / 32 + 2);
    char previous = 0;
    for (guint i = 0; i < bytes->len; ++i) {
        char c = static_cast<char>(bytes->data[i]);
        if (c == '\n' && previous != '\r') out += '\r';
        out += c;
        previous = c;
    }
    if (!out.empty() && out.back() != '\n') out += "\r\n";
    return out;
}

}  // namespace

bool has_8bit(std::string_view bytes) {
    // Eight bytes at a time: the cost of a scan is small beside the send.
    const char* p = bytes.data();
    std::size_t n = bytes.size();
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, p + i, 8);
        if (word & 0x8080808080808080ull) return true;
    }
    for (; i < n; ++i)
        if (static_cast<unsigned char>(p[i]) & 0x80) return true;
    return false;
}

DowngradeResult downgrade_to_7bit(std::string_view message, const DowngradeLimits& limits) {
    DowngradeResult result;
    if (message.size() > limits.max_size) {
        result.error = "message larger than the conversion limit";
        return result;
    }
    if (count_content_types(message) > limits.max_content_types) {
        result.error = "more than " + std::to_string(limits.max_content_types) + " MIME parts";
        return result;
    }
    init_gmime();
    Ref<GMimeStream> input(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
    Ref<GMimeParser> parser(g_mime_parser_new_with_stream(input.p));
    Ref<GMimeMessage> parsed(g_mime_parser_construct_message(parser.p, nullptr));
    if (!parsed.p) {
        result.error = "not a MIME message";
        return result;
    }
    Walker walker(limits);
    walker.walk(g_mime_message_get_mime_part(parsed.p), 1);
    if (!walker.error.empty()) {
        result.error = walker.error;
        return result;
    }
    auto* top = GMIME_OBJECT(parsed.p);
    if (walker.converted > 0 && !g_mime_object_get_header(top, "MIME-Version"))
        g_mime_object_set_header(top, "MIME-Version", "1.0", nullptr);
    Ref<GMimeStream> output(g_mime_stream_mem_new());
    if (g_mime_object_write_to_stream(top, nullptr, output.p) < 0) {
        result.error = "the converted message could not be written";
        return result;
    }
    result.message = with_crlf(g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(output.p)));
    result.parts_converted = walker.converted;
    return result;
}

std::string unstuff(std::string_view transmission) {
    std::string out;
    out.reserve(transmission.size());
    bool line_start = true;
    for (char c : transmission) {
        if (line_start && c == '.') {
            line_start = false;
            continue;  // the stuffing dot; the line's own '.' follows
        }
        out += c;
        line_start = c == '\n';
    }
    return out;
}

}  // namespace smtplb::mime
