#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "core/spool_files.hpp"
#include "proto/data_decoder.hpp"
#include "proto/spool_format.hpp"

namespace smtplb::core {

// Where a spool file is: being written, waiting for delivery, held by an
// administrator, unreadable (never delivered), or undeliverable and unbounceable.
enum class SpoolArea { Tmp, Queue, Hold, Corrupt, Dead };
const char* to_string(SpoolArea area);

// A queue ID: 13 hex digits of the arrival time in microseconds and 3 of a
// sequence, so that name order is arrival order.
std::string make_spool_id(std::int64_t wall_us, std::uint32_t sequence);
bool valid_spool_id(std::string_view id);
std::int64_t spool_id_time_ms(std::string_view id);

struct CommitResult {
    std::error_code error;    // set: nothing was acknowledged, nothing is left behind
    const char* stage = "";   // where it failed, for the log
    std::uint64_t bytes = 0;  // the file's size
};

// A spooled message opened for delivery; its body is read from the file.
class SpoolMessage final : public proto::BodySource {
  public:
    SpoolMessage(std::string id, proto::SpoolLayout layout,
                 std::unique_ptr<SpoolFiles::Reader> reader)
        : id_(std::move(id)), layout_(std::move(layout)), reader_(std::move(reader)) {}
    const std::string& id() const { return id_; }
    const proto::SpoolLayout& layout() const { return layout_; }
    std::uint64_t size() const override { return layout_.body_size; }
    std::string_view chunk_at(std::uint64_t offset, std::size_t max,
                              std::string& scratch) const override;

  private:
    std::string id_;
    proto::SpoolLayout layout_;
    std::unique_ptr<SpoolFiles::Reader> reader_;
};

// The spool's commit protocol and file moves (Postfix's mail_stream habit):
// write under tmp/, fsync the file, rename into queue/, fsync the directory;
// only a commit that returned no error may be acknowledged with 250.
// Synchronous: io runs it off the event loop.
class SpoolStore {
  public:
    SpoolStore(SpoolFiles& files, std::string root) : files_(files), root_(std::move(root)) {}

    std::error_code prepare();  // creates the areas
    std::string path(SpoolArea area, const std::string& id) const;
    std::string dir(SpoolArea area) const;

    CommitResult commit(const std::string& id, const proto::SpoolEnvelope& envelope,
                        const std::vector<proto::Mailbox>& recipients,
                        const proto::BodySource& body);
    // Opens and checks a file; nullopt with the reason when it is damaged.
    std::unique_ptr<SpoolMessage> load(SpoolArea area, const std::string& id, std::string& error);
    // Records one recipient's fate in place (Delivered or Failed), durably.
    std::error_code mark(SpoolArea area, const std::string& id, std::uint64_t offset,
                         proto::SpoolRecord state);
    std::error_code move(const std::string& id, SpoolArea from, SpoolArea to);
    // Remembers a deferred message's next attempt in its file's mtime, so
    // a restart keeps the backoff instead of retrying everything at once.
    std::error_code set_next_attempt(const std::string& id, std::int64_t epoch_ms) {
        return files_.set_mtime(path(SpoolArea::Queue, id), epoch_ms);
    }
    // `durable`: fsync the directory too. A delivered message's file is
    // removed without it: if a crash undoes the unlink, it is delivered
    // again (a duplicate), which the delivery contract allows.
    std::error_code remove(SpoolArea area, const std::string& id, bool durable = true);
    std::vector<SpoolFiles::Entry> list(SpoolArea area, std::error_code& ec);

    // At start: whatever is left in tmp/ was never acknowledged; it goes to
    // corrupt/ so that an administrator can see it. Returns how many.
    std::size_t quarantine_incomplete();

  private:
    SpoolFiles& files_;
    std::string root_;
};

}  // namespace smtplb::core
