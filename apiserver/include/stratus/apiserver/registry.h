// API semantics on top of a Store, independent of HTTP: validation and defaults from the schemas, server-set
// metadata (uid, generation, timestamps), the status subresource, finalizers and two-phase delete, namespaces.
// The HTTP layer (server.h) and in-process clients both go through this class.
#pragma once

#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <vector>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "stratus/apiserver/quota.h"
#include "stratus/apiserver/store.h"
#include "stratus/core/resources.h"
#include "stratus/core/schema.h"

namespace stratus {

inline constexpr const char* kNamespaceFinalizer = "stratus.io/namespace-contents";

struct ListRequest {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;
  std::string continue_token;
};

class Registry {
 public:
  Registry(Store* store, const SchemaRegistry* schemas);
  ~Registry();
  // Limits for namespaces without a Quota (--default-quota); none by default. Set before serving.
  void SetDefaultQuota(QuotaAmounts defaults);
  Quotas* quotas() { return quotas_.get(); }

  // Completion of a write (see WriteDone in store.h): called exactly once, after the write is durable and its
  // watch event published, or with the error. May run on the store's writer thread or on the calling thread.
  using Done = WriteDone;

  // Every spec/metadata write names its field manager (the fieldManager parameter, or the client's User-Agent);
  // the fields it changes become that manager's in metadata.managedFields (managed_fields.h). Empty: "unknown".

  // Creates `obj` in `ns` (ignored for cluster-scoped kinds). Server fields are set; status is dropped for kinds
  // with a status subresource.
  void CreateAsync(const ResourceInfo& r, const std::string& ns, json obj, Done done, const std::string& manager = "");
  // PUT. With `status_only`, only `status` is taken from `obj`; otherwise `status` is ignored.
  void UpdateAsync(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
                   bool status_only, Done done, const std::string& manager = "");
  // PATCH (merge patch, or JSON patch when `json_patch`), retried on conflict unless the patch pins
  // metadata.resourceVersion.
  void PatchAsync(const ResourceInfo& r, const std::string& ns, const std::string& name, json patch,
                  bool status_only, bool json_patch, Done done, const std::string& manager = "");
  // Server-side apply (PATCH application/apply-patch+yaml): merges `config` into the object as `manager`'s
  // intent, creating the object when it does not exist; 409 naming the fields other managers own with other
  // values unless `force`. Retried on store conflicts unless the configuration pins metadata.resourceVersion.
  void ApplyAsync(const ResourceInfo& r, const std::string& ns, const std::string& name, json config,
                  const std::string& manager, bool force, Done done);
  // Two-phase delete: with finalizers, sets deletionTimestamp and returns the object; else removes it.
  void DeleteAsync(const ResourceInfo& r, const std::string& ns, const std::string& name,
                   std::string precondition_uid, Done done);

  // The same writes, waiting for the result (for in-process callers; never from a Done).
  StatusOr<json> Create(const ResourceInfo& r, const std::string& ns, json obj, const std::string& manager = "");
  StatusOr<json> Update(const ResourceInfo& r, const std::string& ns, const std::string& name, json obj,
                        bool status_only, const std::string& manager = "");
  StatusOr<json> Patch(const ResourceInfo& r, const std::string& ns, const std::string& name, const json& patch,
                       bool status_only, bool json_patch = false, const std::string& manager = "");
  StatusOr<json> Apply(const ResourceInfo& r, const std::string& ns, const std::string& name, const json& config,
                       const std::string& manager, bool force);
  StatusOr<json> Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                        const std::string& precondition_uid);

  // Server-side dry runs (?dryRun=All): the object a create, update or patch would store, validated and admitted,
  // with nothing written. DryRunUpdate takes the new object (PUT) or a patch; with neither, it is a delete's
  // dry run and answers the stored object.
  StatusOr<json> DryRunCreate(const ResourceInfo& r, const std::string& ns, json obj,
                              const std::string& manager = "") const;
  StatusOr<json> DryRunUpdate(const ResourceInfo& r, const std::string& ns, const std::string& name, const json* obj,
                              const json* patch, bool json_patch, bool status_only,
                              const std::string& manager = "") const;
  StatusOr<json> DryRunApply(const ResourceInfo& r, const std::string& ns, const std::string& name,
                             const json& config, const std::string& manager, bool force) const;

  StatusOr<json> Get(const ResourceInfo& r, const std::string& ns, const std::string& name) const;
  // The stored JSON text of one object (what Get returns, serialized once when it was written).
  StatusOr<EncodedPtr> GetEncoded(const ResourceInfo& r, const std::string& ns, const std::string& name) const;
  // `ns` empty lists all namespaces. Returns a `{Kind}List`.
  StatusOr<json> List(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const;
  // The same list as JSON text, made by concatenating the objects' stored encodings (no per-object
  // serialization): equal, once parsed, to List's result.
  StatusOr<std::string> ListEncoded(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const;

  // Semantic checks of one kind that its schema cannot express (a gateway inside its cidr, port ranges in order),
  // plugged in by the binary that owns that knowledge, as admission plugins are: run on create and on every spec
  // write after the schema passes, never on status writes. A non-OK Status refuses the write as it is returned
  // (kInvalid with field causes, reported as 422).
  using Validator = std::function<Status(const json& obj)>;
  void AddValidator(const std::string& kind, Validator v);
  // The same for a change of spec that needs the object as it was (a resize checked against its node).
  using UpdateValidator = std::function<Status(const json& cur, const json& next)>;
  void AddUpdateValidator(const std::string& kind, UpdateValidator v);

  // Creates the `default` namespace when missing.
  Status Bootstrap();
  // Starts/stops the namespace lifecycle loop (deletes the contents of terminating namespaces).
  void StartBackground();
  void StopBackground();
  // One pass of the namespace lifecycle (tests call it directly).
  void ReconcileNamespaces();

  Store* store() const { return store_; }
  const SchemaRegistry* schemas() const { return schemas_; }

 private:
  // `manager` records the write's fields in managedFields; nullopt when an apply has set them already.
  StatusOr<json> PrepareCreate(const ResourceInfo& r, const std::string& ns, json obj,
                               const std::optional<std::string>& manager) const;
  // The next state of `cur` for an update (validated and admitted), or why not.
  StatusOr<json> PrepareUpdate(const ResourceInfo& r, const ObjectKey& key, const json& cur, json obj,
                               bool status_only, const std::optional<std::string>& manager) const;
  // The object an apply would store: the merged configuration, prepared as a create (`*exists` false) or update.
  StatusOr<json> PrepareApply(const ResourceInfo& r, const ObjectKey& key, const StoredObject* cur,
                              const json& config, const std::string& manager, bool force) const;
  void ApplyAttempt(const ResourceInfo* r, ObjectKey key, std::shared_ptr<const json> config, std::string manager,
                    bool force, bool pins, int attempt, Done done);
  // `curobj` with `patch` applied; *pins tells whether the patch names a resourceVersion (then it must match).
  StatusOr<json> Patched(const ResourceInfo& r, const ObjectKey& key, const json& curobj, const json& patch,
                         bool json_patch, bool* pins) const;
  // Writes `next` (already prepared) over `cur`: a no-op, a finalized removal, or an update.
  void WritePrepared(const ResourceInfo& r, const ObjectKey& key, const StoredObject& cur, json next,
                     bool status_only, uint64_t expected_rv, Done done);
  // One attempt of Update/Patch/Delete; on a conflict it may be retried (attempt + 1) from the Done.
  void UpdateAttempt(const ResourceInfo* r, ObjectKey key, std::shared_ptr<const json> obj, bool status_only,
                     uint64_t pinned, std::string manager, int attempt, Done done);
  void PatchAttempt(const ResourceInfo* r, ObjectKey key, std::shared_ptr<const json> patch, bool status_only,
                    bool json_patch, std::string manager, int attempt, Done done);
  void DeleteAttempt(const ResourceInfo* r, ObjectKey key, std::string precondition_uid, int attempt, Done done);
  // Runs the list query shared by List and ListEncoded.
  StatusOr<StoreListResult> Query(const ResourceInfo& r, const std::string& ns, const ListRequest& req) const;
  Status CheckNamespace(const ResourceInfo& r, const std::string& ns) const;
  Status ValidateObject(const ResourceInfo& r, const json& obj) const;
  Status RunValidators(const ResourceInfo& r, const json& obj) const;

  // Before an Instance leaves the store: an Event (reason Terminated, label kTombstoneLabel) that keeps what EC2's
  // describe-instances shows of a terminated instance; then `then` (the removal). Written first, so that a reader
  // that no longer finds the Instance finds its tombstone (a live Instance wins over one). Best effort: `then`
  // runs whatever the Event's write answered; for other kinds at once.
  void RecordTombstone(const json& gone, std::function<void()> then);

  // Writes each Quota's status (used, hard) when it differs from what the objects use now.
  void RefreshQuotaStatus();

  Store* store_;
  std::unique_ptr<Quotas> quotas_;
  std::map<std::string, std::vector<Validator>> validators_;  // by kind; set up before serving
  std::map<std::string, std::vector<UpdateValidator>> update_validators_;
  const SchemaRegistry* schemas_;
  std::thread bg_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  bool bg_kick_ = false;
};

// Encodes/decodes list continue tokens (opaque to clients).
std::string EncodeContinue(const std::string& last_name);
StatusOr<std::string> DecodeContinue(const std::string& token);

}  // namespace stratus
