"""Where each multi-node kind is in the API and how its pods are found (the launcher's tests run
them against the fake API server; these pin the names the real controllers use)."""

from __future__ import annotations

import pytest

from domainllm.k8s.workloads import BY_BACKEND, INDEXED_JOB, JOBSET, TRAINJOB, by_kind, is_rank


def test_each_backend_is_a_kind_with_its_api_its_pods_and_its_success_condition() -> None:
    assert [BY_BACKEND[b].kind for b in ("indexed_job", "jobset", "trainjob")] == ["job", "jobset", "trainjob"]
    assert not INDEXED_JOB.custom and (INDEXED_JOB.group, INDEXED_JOB.version) == ("batch", "v1")
    assert (JOBSET.group, JOBSET.version, JOBSET.plural) == ("jobset.x-k8s.io", "v1alpha2", "jobsets") and JOBSET.custom
    assert (TRAINJOB.group, TRAINJOB.version, TRAINJOB.plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
    assert INDEXED_JOB.pod_selector("j") == "batch.kubernetes.io/job-name=j"
    # a TrainJob's pods are its runtime's JobSet's, named after it
    assert JOBSET.pod_selector("j") == TRAINJOB.pod_selector("j") == "jobset.sigs.k8s.io/jobset-name=j"
    assert (INDEXED_JOB.complete, JOBSET.complete, TRAINJOB.complete) == ("Complete", "Completed", "Complete")
    assert (JOBSET.container, TRAINJOB.container) == ("base", "node")
    assert INDEXED_JOB.rendezvous("j") == "j-0.j" and JOBSET.rendezvous("j") == TRAINJOB.rendezvous("j") == "j-node-0-0.j"
    done = {"status": {"conditions": [{"type": "Completed", "status": "True"}]}}
    assert JOBSET.finished(done) == "succeeded" and TRAINJOB.finished(done) is None


def test_ranks_and_a_kind_that_is_not_one() -> None:
    assert is_rank({"metadata": {"labels": {}}}) and is_rank({"metadata": {"labels": {"jobset.sigs.k8s.io/replicatedjob-name": "node"}}})
    assert not is_rank({"metadata": {"labels": {"jobset.sigs.k8s.io/replicatedjob-name": "model-initializer"}}})
    assert by_kind("trainjob") is TRAINJOB
    with pytest.raises(ValueError, match=r"not a multi-node kind: 'pod' \(one of job, jobset, trainjob\)"):
        by_kind("pod")
