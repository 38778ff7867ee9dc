// Status helpers shared by every reconciler: conditions with Kubernetes semantics (lastTransitionTime changes
// only when status flips), status writes only when something changed, and Events recorded on objects.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stratus/core/api_client.h"

namespace stratus::runtime {

// Sets condition `type` in obj.status.conditions (creating the list). Keeps lastTransitionTime when the status
// value is unchanged. Also sets the condition's observedGeneration to metadata.generation. Returns true when
// anything changed.
bool SetCondition(json& obj, const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message);
// Removes condition `type`; true when it was there.
bool RemoveCondition(json& obj, const std::string& type);
// The condition of `type`, or null.
json GetCondition(const json& obj, const std::string& type);
bool IsConditionTrue(const json& obj, const std::string& type);

// Finalizers. Both writes pin obj's resourceVersion (a stale cache gets 409 and the reconcile runs again).
bool HasFinalizer(const json& obj, const std::string& finalizer);
// Adds `finalizer` when missing; returns the stored object (`obj` itself when nothing changed).
StatusOr<json> AddFinalizer(ApiClient* client, const std::string& plural, const json& obj, const std::string& finalizer);
// Removes `finalizer`; an object already gone counts as done.
Status RemoveFinalizer(ApiClient* client, const std::string& plural, const json& obj, const std::string& finalizer);

// For a write on a path that returns another error anyway (retried with backoff, the write with it): the write's
// own failure is logged with `what`, never silently dropped. Status is [[nodiscard]]; this is the one way to let
// a result go.
void WarnIfFailed(const Status& s, const std::string& what);
template <typename T>
void WarnIfFailed(const StatusOr<T>& s, const std::string& what) {
  WarnIfFailed(s.status(), what);
}

// Writes `desired["status"]` through the status subresource when it differs from `current["status"]`.
// Returns the stored object (or `current` when nothing changed).
StatusOr<json> UpdateStatusIfChanged(ApiClient* client, const std::string& plural, const json& current,
                                     const json& desired);

// Writes `entry` as this node's part of obj's status, status.nodes.<node>, by merge patch (keys given with null are
// removed), unless every key already says so. The node's own reconciler is that entry's only writer; a summary
// reconciler in the server owns the rest of the status. An object already gone counts as done.
Status ReportNodeEntry(ApiClient* client, const std::string& plural, const json& obj, const std::string& node,
                       const json& entry);

// Records an Event about `obj` (kind Event, involvedObject set, type Normal|Warning). Repeats of the same
// reason+message on the same object bump `count` and lastTimestamp instead of creating new Events.
// An event a decision asks for, recorded once the decision has been carried out.
struct PendingEvent {
  std::string type, reason, message;
};

// `obj` as it is while its deletion waits for others: phase Deleting and Ready=False, reason DeleteBlocked, with
// `message`; a Warning event of it is added to `events` when the message is new.
json DeleteBlockedStatus(const json& obj, const std::string& message, std::vector<PendingEvent>* events);

class EventRecorder {
 public:
  // `host` defaults to this machine's hostname.
  EventRecorder(ApiClient* client, std::string component, std::string host = "");
  // Never throws and never fails the caller: a failed write is logged at debug level.
  void Record(const json& obj, const std::string& type, const std::string& reason, const std::string& message);

 private:
  ApiClient* client_;
  std::string component_;
  std::string host_;
  // (uid, reason, message) -> the Event recorded for it, shared by copies of this recorder.
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace stratus::runtime
