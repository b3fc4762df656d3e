"""Generic Triton Python-backend runner: copied as `model.py` into every published model version.

It runs inside Triton's Python stub, so it imports nothing from this project: only the standard
library, numpy, torch and Triton's `triton_python_backend_utils`. It verifies the version's
`model.pt` against the sha256 in `metadata.json` before loading (a corrupt version fails to load
and the serving version stays), concatenates all requests of a dynamic batch into one tensor call,
and answers each request separately, so one bad request does not fail its neighbours.
"""

import hashlib
import json
import os
import sys

# The stub starts an isolated interpreter that ignores PYTHONPATH; the launcher sets it to the
# environment holding torch and numpy, so add it by hand before importing them.
for _entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
    if _entry and _entry not in sys.path:
        sys.path.insert(0, _entry)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

_NUMPY_DTYPES = {
    "TYPE_INT64": np.int64,
    "TYPE_FP32": np.float32,
    "TYPE_BOOL": np.bool_,
    "TYPE_INT32": np.int32,
}


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(version_dir, "metadata.json"), "rb") as fh:
            self.metadata = json.load(fh)
        model_path = os.path.join(version_dir, "model.pt")
        actual = _sha256(model_path)
        if actual != self.metadata.get("sha256"):
            raise pb_utils.TritonModelException(
                f"{config['name']} version {args['model_version']}: model.pt sha256 {actual[:12]} does not "
                f"match metadata {str(self.metadata.get('sha256'))[:12]}; refusing to load"
            )
        threads = int(os.environ.get("LOGAD_TRITON_TORCH_THREADS", "1"))
        torch.set_num_threads(max(1, threads))
        self.module = torch.jit.load(model_path, map_location="cpu")
        self.module.eval()
        self.inputs = [(i["name"], _NUMPY_DTYPES[i["data_type"]]) for i in config["input"]]
        self.outputs = [(o["name"], _NUMPY_DTYPES[o["data_type"]]) for o in config["output"]]

    def _run(self, arrays):
        with torch.inference_mode():
            result = self.module(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        if not isinstance(result, tuple | list):
            result = (result,)
        return [
            r.cpu().numpy().astype(dtype, copy=False)
            for r, (_, dtype) in zip(result, self.outputs, strict=True)
        ]

    def _respond(self, outputs):
        tensors = [pb_utils.Tensor(name, out) for (name, _), out in zip(self.outputs, outputs, strict=True)]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests):
        per_request = []
        for request in requests:
            arrays = [
                pb_utils.get_input_tensor_by_name(request, name).as_numpy().astype(dtype, copy=False)
                for name, dtype in self.inputs
            ]
            per_request.append(arrays)
        try:
            return self._execute_batched(per_request)
        except Exception:
            # One malformed request must not fail the others: fall back to one call each.
            return [self._execute_one(arrays) for arrays in per_request]

    def _execute_batched(self, per_request):
        sizes = [arrays[0].shape[0] for arrays in per_request]
        merged = []
        for position in range(len(self.inputs)):
            parts = [arrays[position] for arrays in per_request]
            width = max(p.shape[1] for p in parts) if parts[0].ndim > 1 else None
            if width is not None:
                # Variable-length inputs (dims -1) are right-padded with 0, the padding id.
                parts = [
                    np.pad(p, ((0, 0), (0, width - p.shape[1]))) if p.shape[1] < width else p for p in parts
                ]
            merged.append(np.concatenate(parts, axis=0))
        outputs = self._run(merged)
        responses, start = [], 0
        for size in sizes:
            responses.append(self._respond([out[start : start + size] for out in outputs]))
            start += size
        return responses

    def _execute_one(self, arrays):
        try:
            return self._respond(self._run(arrays))
        except Exception as exc:
            return pb_utils.InferenceResponse(
                output_tensors=[], error=pb_utils.TritonError(f"inference failed: {exc}")
            )

    def finalize(self):
        self.module = None
