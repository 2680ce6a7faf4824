"""A stand-in for KServe's controller, for tests against the local Kubernetes API server.

No controller runs there, so an InferenceService never gets a status by itself. This stand-in
does the one thing the deploy step waits for: it marks each InferenceService of a namespace
Ready for its latest generation, with an address, through the status subresource as KServe's
controller does. The address is a real predictor process the test runs, which the deploy
step's probe then asks for the rolled-out versions; nothing here starts pods from the object:
the tests that use it prove what the API server and the deploy step do, not what KServe would
do with the object.
"""

from __future__ import annotations

import threading
from typing import Any

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class StandInKServeController:
    def __init__(self, api: Any, namespace: str, *, address: str, interval_s: float = 0.1) -> None:
        self.api = api  # a CustomObjectsApi with rights to the status subresource
        self.namespace = namespace
        # Where the InferenceService "answers": a real predictor process the test runs.
        self.address = address
        self.interval_s = interval_s
        self.marked: list[tuple[str, int]] = []  # (name, generation) made Ready
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StandInKServeController:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            listed = self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
            for obj in listed.get("items", []):
                self._mark(obj)

    def _mark(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        generation = meta.get("generation")
        if (obj.get("status") or {}).get("observedGeneration") == generation:
            return
        status = {
            "observedGeneration": generation,
            "url": self.address,
            "address": {"url": self.address},
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, meta["name"], {"status": status}
        )
        self.marked.append((meta["name"], generation))
