#include "core/spool_store.hpp"

#include <algorithm>
#include <cstdio>

#include "proto/dot_stuffer.hpp"

namespace smtplb::core {

const char* to_string(SpoolArea area) {
    switch (area) {
        case SpoolArea::Tmp:
            return "tmp";
        case SpoolArea::Queue:
            return "queue";
        case SpoolArea::Hold:
            return "hold";
        case SpoolArea::Corrupt:
            return "corrupt";
        case SpoolArea::Dead:
            return "dead";
    }
    return "queue";
}

std::string make_spool_id(std::int64_t wall_us, std::uint32_t sequence) {
    char out[17];
    std::snprintf(out, sizeof out, "%013llX%03X",
                  static_cast<unsigned long long>(wall_us) & 0xFFFFFFFFFFFFFull, sequence & 0xFFFu);
    return out;
}

bool valid_spool_id(std::string_view id) {
    if (id.size() != 16) return false;
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
    return true;
}

std::int64_t spool_id_time_ms(std::string_view id) {
    if (!valid_spool_id(id)) return 0;
    std::int64_t us = 0;
    for (char c : id.substr(0, 13))
        us = us * 16 + (c <= '9' ? c - '0' : c - 'A' + 10);
    return us / 1000;
}

std::string_view SpoolMessage::chunk_at(std::uint64_t offset, std::size_t max,
                                        std::string& scratch) const {
    // Find the body record holding `offset`; chunks are few (64 KiB each).
    std::uint64_t start = 0;
    for (const auto& chunk : layout_.body) {
        if (offset < start + chunk.length) {
            std::uint64_t within = offset - start;
            std::size_t n =
                static_cast<std::size_t>(std::min<std::uint64_t>(max, chunk.length - within));
            if (!reader_->read_at(chunk.offset + within, n, scratch) || scratch.size() != n)
                return {};
            return scratch;
        }
        start += chunk.length;
    }
    return {};
}

std::string SpoolStore::dir(SpoolArea area) const {
    return root_ + "/" + to_string(area);
}

std::string SpoolStore::path(SpoolArea area, const std::string& id) const {
    return dir(area) + "/" + id;
}

std::error_code SpoolStore::prepare() {
    if (auto ec = files_.make_dir(root_)) return ec;
    for (auto area :
         {SpoolArea::Tmp, SpoolArea::Queue, SpoolArea::Hold, SpoolArea::Corrupt, SpoolArea::Dead})
        if (auto ec = files_.make_dir(dir(area))) return ec;
    return {};
}

CommitResult SpoolStore::commit(const std::string& id, const proto::SpoolEnvelope& envelope,
                                const std::vector<proto::Mailbox>& recipients,
                                const proto::BodySource& body) {
    const auto tmp = path(SpoolArea::Tmp, id);
    const auto final_path = path(SpoolArea::Queue, id);
    std::error_code ec;
    std::uint64_t bytes = 0;
    auto fail = [&](const char* stage, bool created) {
        if (created) files_.remove(tmp);
        return CommitResult{ec, stage, 0};
    };
    {
        auto writer = files_.create(tmp, ec);
        if (!writer) return fail("create", false);
        auto head = proto::spool_head(envelope, recipients);
        ec = writer->write(head);
        if (ec) return fail("write", true);
        bytes = head.size();
        constexpr std::size_t kChunk = 65536;
        std::string scratch;
        // The spool keeps content: a message held in transmission form
        // loses its stuffing dots on the way in.
        const bool stuffed = body.form() == proto::BodyForm::Transmission;
        proto::DotUnstuffer unstuffer;
        std::string content;
        std::uint64_t content_size = 0;
        for (std::uint64_t offset = 0; offset < body.size();) {
            auto chunk = body.chunk_at(offset, kChunk, scratch);
            if (chunk.empty()) {
                ec = std::make_error_code(std::errc::io_error);
                return fail("read body", true);
            }
            offset += chunk.size();
            if (stuffed) {
                content.clear();
                unstuffer.decode(chunk, content);
                chunk = content;
            }
            ec = writer->write(proto::spool_record(proto::SpoolRecord::Body, chunk));
            if (ec) return fail("write", true);
            bytes += proto::kSpoolRecordHeader + chunk.size();
            content_size += chunk.size();
        }
        auto end = proto::spool_end(content_size);
        ec = writer->write(end);
        if (ec) return fail("write", true);
        bytes += end.size();
        ec = writer->sync();
        if (ec) return fail("fsync", true);
    }
    ec = files_.rename(tmp, final_path);
    if (ec) return fail("rename", true);
    ec = files_.sync_dir(dir(SpoolArea::Queue));
    if (ec) {
        // Not acknowledged, so not kept: the client will send it again.
        files_.remove(final_path);
        return CommitResult{ec, "directory fsync", 0};
    }
    return CommitResult{{}, "", bytes};
}

std::unique_ptr<SpoolMessage> SpoolStore::load(SpoolArea area, const std::string& id,
                                               std::string& error) {
    std::error_code ec;
    auto reader = files_.open(path(area, id), ec);
    if (!reader) {
        error = "cannot open: " + ec.message();
        return nullptr;
    }
    const auto* r = reader.get();
    auto layout = proto::parse_spool([r](std::uint64_t offset, std::size_t n,
                                         std::string& out) { return r->read_at(offset, n, out); },
                                     r->size(), error);
    if (!layout) return nullptr;
    return std::make_unique<SpoolMessage>(id, std::move(*layout), std::move(reader));
}

std::error_code SpoolStore::mark(SpoolArea area, const std::string& id, std::uint64_t offset,
                                 proto::SpoolRecord state) {
    return files_.rewrite_byte(path(area, id), offset, static_cast<char>(state));
}

std::error_code SpoolStore::move(const std::string& id, SpoolArea from, SpoolArea to) {
    if (auto ec = files_.rename(path(from, id), path(to, id))) return ec;
    if (auto ec = files_.sync_dir(dir(to))) return ec;
    return files_.sync_dir(dir(from));
}

std::error_code SpoolStore::remove(SpoolArea area, const std::string& id, bool durable) {
    if (auto ec = files_.remove(path(area, id))) return ec;
    return durable ? files_.sync_dir(dir(area)) : std::error_code();
}

std::vector<SpoolFiles::Entry> SpoolStore::list(SpoolArea area, std::error_code& ec) {
    auto entries = files_.list(dir(area), ec);
    std::erase_if(entries, [](const auto& e) { return !valid_spool_id(e.name); });
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    return entries;
}

std::size_t SpoolStore::quarantine_incomplete() {
    std::error_code ec;
    std::size_t moved = 0;
    for (const auto& entry : files_.list(dir(SpoolArea::Tmp), ec)) {
        if (!files_.rename(path(SpoolArea::Tmp, entry.name), path(SpoolArea::Corrupt, entry.name)))
            ++moved;
    }
    if (moved > 0) {
        files_.sync_dir(dir(SpoolArea::Corrupt));
        files_.sync_dir(dir(SpoolArea::Tmp));
    }
    return moved;
}

}  // namespace smtplb::core
