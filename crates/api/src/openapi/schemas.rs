//! The schemas of both OpenAPI documents (our kinds and the `meta.k8s.io` types they refer
//! to), written once with a `$ref` prefix.

use serde_json::{Map, Value, json};

use super::{META, OURS};
use crate::{CoredumpReason, CoredumpState, GROUP, VERSION};

fn gvk(kind: &str) -> Value {
    json!([{"group": GROUP, "version": VERSION, "kind": kind}])
}

fn meta_gvk(kind: &str) -> Value {
    json!([{"group": "", "version": "v1", "kind": kind}])
}

fn s(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn int(description: &str, format: &str) -> Value {
    json!({"type": "integer", "format": format, "description": description})
}

fn string_map(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}, "description": description})
}

fn object(description: &str, properties: Value, required: &[&str], kind: Option<Value>) -> Value {
    let mut o = json!({"type": "object", "description": description, "properties": properties});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    if let Some(k) = kind {
        o["x-kubernetes-group-version-kind"] = k;
    }
    o
}

/// All schemas, `$ref`s prefixed with `prefix` (`#/definitions/` or `#/components/schemas/`).
pub(super) fn schemas(prefix: &str) -> Map<String, Value> {
    let r = |name: &str| json!({"$ref": format!("{prefix}{name}")});
    let rd = |name: &str, description: &str| json!({"allOf": [{"$ref": format!("{prefix}{name}")}], "description": description});
    let type_meta = |kind_desc: &str| {
        json!({
            "apiVersion": s("APIVersion defines the versioned schema of this representation of an object."),
            "kind": s(kind_desc),
        })
    };
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    let states: Vec<&str> = CoredumpState::ALL.iter().map(|s| s.as_str()).collect();
    let reasons: Vec<&str> = CoredumpReason::ALL.iter().map(|r| r.as_str()).collect();
    let mut m = Map::new();
    let mut put = |name: String, v: Value| {
        m.insert(name, v);
    };

    put(
        format!("{META}.ObjectMeta"),
        object(
            "Standard object metadata.",
            json!({
                "name": s("Name, unique within a namespace."),
                "generateName": s("Prefix for a server-generated name, used when name is empty."),
                "namespace": s("Namespace of the object."),
                "uid": s("Unique identifier assigned by the server."),
                "resourceVersion": s("Opaque version for optimistic concurrency."),
                "creationTimestamp": {"type": "string", "format": "date-time", "description": "Creation time (RFC 3339)."},
                "labels": string_map("Labels, selectable with labelSelector."),
                "annotations": string_map("Annotations."),
            }),
            &[],
            None,
        ),
    );
    put(
        format!("{META}.ListMeta"),
        object(
            "Standard list metadata.",
            json!({
                "resourceVersion": s("Revision the list was read at."),
                "continue": s("Token for the next page."),
                "remainingItemCount": int("Number of items after this page.", "int64"),
            }),
            &[],
            None,
        ),
    );
    put(
        format!("{META}.StatusCause"),
        object(
            "One field-level cause of a failure.",
            json!({"reason": s("Machine-readable cause."), "message": s("Description."), "field": s("Field path.")}),
            &[],
            None,
        ),
    );
    put(
        format!("{META}.StatusDetails"),
        object(
            "Which object a failure concerns.",
            json!({
                "name": s("Object name."), "group": s("API group."), "kind": s("Resource."), "uid": s("Object UID."),
                "causes": {"type": "array", "items": r(&format!("{META}.StatusCause")), "description": "Field-level causes."},
                "retryAfterSeconds": int("Suggested retry delay.", "int32"),
            }),
            &[],
            None,
        ),
    );
    put(
        format!("{META}.Status"),
        object(
            "Result of an operation that does not return an object.",
            with(
                type_meta("Status"),
                json!({
                    "metadata": rd(&format!("{META}.ListMeta"), "Unused."),
                    "status": s("Success or Failure."),
                    "message": s("Description."),
                    "reason": s("Machine-readable reason."),
                    "details": rd(&format!("{META}.StatusDetails"), "Which object."),
                    "code": int("HTTP status code.", "int32"),
                }),
            ),
            &[],
            Some(meta_gvk("Status")),
        ),
    );
    put(
        format!("{META}.Preconditions"),
        object(
            "Conditions for a delete.",
            json!({"uid": s("Required UID."), "resourceVersion": s("Required resourceVersion.")}),
            &[],
            None,
        ),
    );
    put(
        format!("{META}.DeleteOptions"),
        object(
            "Options of a delete.",
            with(
                type_meta("DeleteOptions"),
                json!({
                    "gracePeriodSeconds": int("Ignored: deletion is immediate.", "int64"),
                    "preconditions": rd(&format!("{META}.Preconditions"), "Conditions that must hold."),
                    "propagationPolicy": s("Ignored: nothing depends on these objects."),
                    "dryRun": {"type": "array", "items": {"type": "string"}, "description": "All: validate only."},
                }),
            ),
            &[],
            Some(meta_gvk("DeleteOptions")),
        ),
    );

    put(
        format!("{OURS}.CoredumpSpec"),
        object(
            "Facts about the crash, recorded once and immutable.",
            json!({
                "nodeName": s("Node where the crash happened."),
                "podName": s("Pod the process ran in."),
                "podUID": s("UID of that pod."),
                "containerName": s("Container of the process."),
                "containerID": s("Container ID, e.g. containerd://<id>."),
                "image": s("Container image."),
                "pid": int("Process id in the initial pid namespace.", "int32"),
                "tid": int("Thread id of the crashing thread.", "int32"),
                "executable": s("Executable path as the kernel saw it."),
                "commandLine": {"type": "array", "items": {"type": "string"}, "description": "Command line (may be truncated)."},
                "signal": int("Signal number that caused the dump.", "int32"),
                "signalName": s("Signal name, e.g. SIGSEGV."),
                "crashTime": {"type": "string", "format": "date-time", "description": "Time of the crash (RFC 3339)."},
                "uid": int("Real uid of the process.", "int32"),
                "gid": int("Real gid of the process.", "int32"),
                "qosClass": s("QoS class of the pod (Guaranteed, Burstable, BestEffort)."),
                "threads": int("Threads in the core.", "int32"),
                "faultAddress": s("Faulting address (hex) for signals that carry one."),
                "buildID": s("GNU build-id of the main executable (hex), to find its debug symbols."),
            }),
            &["pid", "signal", "crashTime"],
            None,
        ),
    );
    let boolean = |description: &str| json!({"type": "boolean", "description": description});
    let list = |item: Value, description: &str| json!({"type": "array", "items": item, "description": description});
    put(
        format!("{OURS}.Frame"),
        object(
            "One stack frame.",
            json!({
                "pc": s("Instruction address in the crashed process (hex); for callers, the return address."),
                "module": s("Path of the mapped file holding pc."),
                "offset": s("Offset of pc from the module's load address (hex), stable across ASLR."),
                "buildID": s("GNU build ID of the module (hex)."),
                "function": s("Function name, demangled."),
                "file": s("Source file, when debug information was available."),
                "line": int("Source line, when debug information was available.", "int32"),
                "inlined": boolean("A function inlined into the next frame (same pc)."),
            }),
            &["pc"],
            None,
        ),
    );
    put(
        format!("{OURS}.ThreadBacktrace"),
        object(
            "One thread's stack.",
            json!({
                "tid": int("Thread id.", "int32"),
                "crashed": boolean("The thread that received the fatal signal."),
                "frames": list(r(&format!("{OURS}.Frame")), "Innermost frame first."),
                "truncated": boolean("More frames than the bound: the outermost ones are left out."),
                "stopped": s("Why unwinding stopped before the stack's root, when it did."),
            }),
            &["tid"],
            None,
        ),
    );
    put(
        format!("{OURS}.Module"),
        object(
            "One mapped ELF image.",
            json!({
                "path": s("Path as the kernel named it."),
                "base": s("Load address (hex)."),
                "buildID": s("GNU build ID (hex)."),
                "binary": boolean("The binary itself was available to the analysis (unwind tables, symbols)."),
            }),
            &["path", "base"],
            None,
        ),
    );
    put(
        format!("{OURS}.Analysis"),
        object(
            "What the analysis of the core found.",
            json!({
                "threads": list(r(&format!("{OURS}.ThreadBacktrace")), "Threads, the crashing thread first."),
                "omittedThreads": int("Threads left out to stay within bounds.", "int32"),
                "modules": list(r(&format!("{OURS}.Module")), "Mapped ELF images, the main executable first."),
                "complete": boolean("Nothing limited the result."),
                "problems": list(json!({"type": "string"}), "What limited the result, one sentence each."),
            }),
            &[],
            None,
        ),
    );
    put(
        format!("{OURS}.CoredumpStatus"),
        object(
            "What became of the core file.",
            json!({
                "state": {"type": "string", "enum": states, "description": "Outcome of storing the core."},
                "reason": {"type": "string", "enum": reasons, "description": "Why the core is not (all) there, for programs; absent when stored whole."},
                "message": s("Detail for anything but Stored."),
                "rawSize": int("Bytes of core the kernel wrote.", "int64"),
                "coreSize": int("Decompressed size of the stored core (Content-Length of the core subresource).", "int64"),
                "storedSize": int("Bytes stored (compressed).", "int64"),
                "sha256": s("SHA-256 (hex) of the stored core."),
                "compression": s("Compression of the stored blob."),
                "blobPath": s("Blob location: <namespace>/<podUID>/<container>/<file>."),
                "signature": s("Crash signature: a stable hash of the crashing thread's top frames, the same for every crash of one bug (also the coredump.fujitsu.com/signature label)."),
                "analysis": rd(&format!("{OURS}.Analysis"), "The symbolized backtrace and mapped modules, when the core could be analysed."),
                "suppressedCrashes": int("Crashes of the pod that were over its crash-loop limits and not kept; this RateLimited record stands for them with the facts of the last one.", "int64"),
            }),
            &[],
            None,
        ),
    );
    put(
        format!("{OURS}.Coredump"),
        object(
            "One captured crash. Its core file is served by the core subresource.",
            with(
                type_meta("Coredump"),
                json!({
                    "metadata": rd(&format!("{META}.ObjectMeta"), "Standard object metadata."),
                    "spec": rd(&format!("{OURS}.CoredumpSpec"), "Facts about the crash."),
                    "status": rd(&format!("{OURS}.CoredumpStatus"), "What became of the core file."),
                }),
            ),
            &["spec"],
            Some(gvk("Coredump")),
        ),
    );
    put(
        format!("{OURS}.CoredumpEndpointSpec"),
        object(
            "Which pod an endpoint serves.",
            json!({"podUID": s("UID of the pod; its cores are stored under this UID. Filled from the live pod when omitted.")}),
            // Optional: the API server fills it from the live pod (the seed's behavior), so
            // kubectl's client-side validation must not demand it.
            &[],
            None,
        ),
    );
    put(
        format!("{OURS}.CoredumpEndpointStatus"),
        object(
            "Observed state of an endpoint.",
            json!({
                "coreCount": int("Number of stored cores of the pod.", "int64"),
                "message": s("Free-form message."),
            }),
            &[],
            None,
        ),
    );
    put(
        format!("{OURS}.CoredumpEndpoint"),
        object(
            "Access to the cores of one pod (metadata.name = pod name); the dump subresource streams them as tar.gz.",
            with(
                type_meta("CoredumpEndpoint"),
                json!({
                    "metadata": rd(&format!("{META}.ObjectMeta"), "Standard object metadata."),
                    "spec": rd(&format!("{OURS}.CoredumpEndpointSpec"), "Which pod."),
                    "status": rd(&format!("{OURS}.CoredumpEndpointStatus"), "Observed state."),
                }),
            ),
            &[],
            Some(gvk("CoredumpEndpoint")),
        ),
    );
    for kind in ["Coredump", "CoredumpEndpoint"] {
        put(
            format!("{OURS}.{kind}List"),
            object(
                &format!("A list of {kind} objects."),
                with(
                    type_meta(&format!("{kind}List")),
                    json!({
                        "metadata": rd(&format!("{META}.ListMeta"), "Standard list metadata."),
                        "items": {"type": "array", "items": r(&format!("{OURS}.{kind}")), "description": "The objects."},
                    }),
                ),
                &["items"],
                Some(gvk(&format!("{kind}List"))),
            ),
        );
    }
    m
}
