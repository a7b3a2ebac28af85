"""The Kubernetes manifests: both overlays render offline with kubectl's kustomize, every object validates
strictly against the Kubernetes API schema, and the pieces agree with each other and with the service's
settings (probes, engine URLs, shared adapter volume, GPU resources, autoscaler, placeholder secrets)."""

from __future__ import annotations

import copy
import json
import os
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.deploy.common import (
    DEPLOY,
    OVERLAYS,
    SHARED_SETTINGS,
    Doc,
    Rendered,
    kustomize,
    render_overlay,
    settings_from,
    url_host_port,
)

# kubectl here is v1.32; kubernetes-validate bundles the schemas of 1.25 and later.
KUBERNETES_VERSION = "1.32.0"
PLACEHOLDER = "change-me"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    return render_overlay(request.param)


def validate(doc: Doc) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_object_validates_strictly(rendered: Rendered) -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered.docs)
    for doc in rendered.docs:
        try:
            validate(doc)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(
                f"{rendered.name}: {doc['kind']}/{doc['metadata']['name']} at {path}: {error.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(f"{rendered.name}: no schema: {error.message}")
    assert {
        "Deployment/router",
        "StatefulSet/engine",
        "StatefulSet/postgres",
        "Service/router",
        "Service/engine",
        "Service/postgres",
        "HorizontalPodAutoscaler/router",
        "PersistentVolumeClaim/adapters",
    } <= set(kinds), kinds


def test_strict_validation_rejects_an_unknown_field() -> None:
    router = copy.deepcopy(render_overlay("cpu").router)
    router["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/ready"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(router)


def test_router_probes(rendered: Rendered) -> None:
    container = rendered.container(rendered.router)
    port = int(rendered.env(rendered.router)["LORA_ROUTER_PORT"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} GETs {get['path']}"
        assert named.get(get["port"], get["port"]) == port, f"{probe} is not on the service's port {port}"


def test_engine_probes_use_vllm_health(rendered: Rendered) -> None:
    container = rendered.container(rendered.engine)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = rendered.command(rendered.engine)[rendered.command(rendered.engine).index("--port") + 1]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/health"
        assert named.get(get["port"], get["port"]) == int(port)


def test_engine_urls_name_every_replica(rendered: Rendered) -> None:
    engine = rendered.engine
    service = rendered.one("Service", engine["spec"]["serviceName"])
    assert service["spec"].get("clusterIP") == "None", "per-replica DNS names need a headless Service"
    assert service["spec"]["selector"].items() <= engine["spec"]["template"]["metadata"]["labels"].items()
    command = rendered.command(engine)
    port = int(command[command.index("--port") + 1])
    name, svc, replicas = engine["metadata"]["name"], service["metadata"]["name"], engine["spec"]["replicas"]

    urls = settings_from(rendered.env(rendered.router)).engine_urls
    assert urls == [f"http://{name}-{i}.{svc}:{port}" for i in range(replicas)]
    assert [url_host_port(u) for u in urls]  # well-formed
    assert replicas == {"cpu": 2, "gpu": 4}[rendered.name]


def test_gpus_only_in_the_gpu_overlay(rendered: Rendered) -> None:
    pod = rendered.engine["spec"]["template"]["spec"]
    resources = rendered.container(rendered.engine).get("resources", {})
    image = rendered.container(rendered.engine)["image"]
    identity_base = settings_from(rendered.env(rendered.router)).replica_identity_base
    if rendered.name == "gpu":
        assert resources["limits"]["nvidia.com/gpu"] == 1
        assert resources.get("requests", {}).get("nvidia.com/gpu", 1) == 1
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
        assert pod["nodeSelector"]
        assert image.startswith("lora-router/engine-cuda:")
        assert identity_base is False, "CUDA kernels leave base-model tokens alone"
    else:
        everything = json.dumps(rendered.docs)
        assert "nvidia.com/gpu" not in everything
        assert image.startswith("lora-router/engine-cpu:")
        engine = settings_from(rendered.env(rendered.engine))
        # vLLM's own CPU LoRA ops apply the last slot's adapter to base-model tokens; the batched ops do not.
        assert identity_base or engine.cpu_lora_ops == "batched"
        assert engine.kv_cache_gib >= 1


def test_routers_and_replicas_read_the_same_settings(rendered: Rendered) -> None:
    """`lora-router replica` derives vLLM's flags from the settings: routers and replicas must see the same
    values for what both use."""
    router = settings_from(rendered.env(rendered.router))
    engine = settings_from(rendered.env(rendered.engine))
    for field in SHARED_SETTINGS:
        assert getattr(router, field) == getattr(engine, field), field
    assert router.engine == "remote"
    assert router.database_url and router.database_url.startswith("postgresql://")


def test_adapter_volume_is_shared_at_the_same_path(rendered: Rendered) -> None:
    pvc = rendered.one("PersistentVolumeClaim", "adapters")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    root = str(settings_from(rendered.env(rendered.router)).resolved_adapter_root)

    def mount(workload: Doc) -> Doc:
        volumes = {
            v["name"]
            for v in workload["spec"]["template"]["spec"]["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]
        }
        mounts = [m for m in rendered.container(workload)["volumeMounts"] if m["name"] in volumes]
        assert len(mounts) == 1, f"{workload['metadata']['name']} does not mount the adapters claim once"
        return mounts[0]

    router, engine = mount(rendered.router), mount(rendered.engine)
    assert router["mountPath"] == engine["mountPath"] == root
    assert not router.get("readOnly"), "routers write default experts (and the identity adapter) there"


def test_autoscaler_drives_the_router(rendered: Rendered) -> None:
    hpa = rendered.one("HorizontalPodAutoscaler", "router")
    target = hpa["spec"]["scaleTargetRef"]
    router = rendered.router
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        router["apiVersion"],
        router["kind"],
        router["metadata"]["name"],
    )
    assert "replicas" not in router["spec"], "the autoscaler owns the router count"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Resource" and metric["resource"]["target"]["type"] == "Utilization":
            name = metric["resource"]["name"]
            assert rendered.container(router)["resources"]["requests"][name], (
                f"utilization needs a {name} request"
            )


def test_services_select_pods_and_service_links_shadow_no_setting(rendered: Rendered) -> None:
    workloads = rendered.all("Deployment") + rendered.all("StatefulSet")
    for service in rendered.all("Service"):
        selector = service["spec"]["selector"].items()
        assert any(selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads), (
            f"Service {service['metadata']['name']} selects no pod"
        )
        for workload in workloads:
            assert workload["spec"]["selector"]["matchLabels"].items() <= (
                workload["spec"]["template"]["metadata"]["labels"].items()
            )
    # Kubernetes injects <SERVICE>_PORT=tcp://... into pods with service links: never over a setting.
    links = [s["metadata"]["name"].upper().replace("-", "_") + "_" for s in rendered.all("Service")]
    for workload in (rendered.router, rendered.engine):
        if workload["spec"]["template"]["spec"].get("enableServiceLinks", True):
            assert not [p for p in links if p.startswith("LORA_ROUTER_")], links


def test_secrets_hold_placeholders_that_agree_with_the_database(rendered: Rendered) -> None:
    for secret in rendered.all("Secret"):
        for key, value in rendered.secret_values(secret["metadata"]["name"]).items():
            assert PLACEHOLDER in value or value == "{}", (
                f"Secret key {key} holds a value that is no placeholder"
            )

    url = urlsplit(settings_from(rendered.env(rendered.router)).database_url or "")
    postgres = rendered.one("StatefulSet", "postgres")
    env = rendered.env(postgres)
    service = rendered.one("Service", postgres["spec"]["serviceName"])
    assert url.hostname == service["metadata"]["name"]
    assert url.port == service["spec"]["ports"][0]["port"]
    assert (url.username, url.password) == (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"])
    assert url.path == "/" + env["POSTGRES_DB"]


def test_documented_secret_replacement(tmp_path) -> None:  # noqa: ANN001
    """deploy/README.md's way to supply real secrets: an overlay of one's own whose secretGenerator replaces
    the placeholder Secret; every reference must follow it."""
    real = {
        "ENGINE_API_KEY": "k" * 32,
        "POSTGRES_PASSWORD": "p" * 24,
        "DATABASE_URL": f"postgresql://lora_router:{'p' * 24}@postgres:5432/lora_router",
        "API_KEYS": json.dumps({"sha256:" + "0" * 64: "admin"}),
    }
    (tmp_path / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in real.items()))
    kustomization = {
        "resources": [os.path.relpath(DEPLOY / "k8s" / "overlays" / "cpu", tmp_path)],
        "secretGenerator": [{"name": "lora-router-secrets", "behavior": "replace", "envs": ["secrets.env"]}],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    rendered = Rendered("prod", kustomize(tmp_path))

    [secret] = rendered.all("Secret")
    assert rendered.secret_values(secret["metadata"]["name"]) == real
    router = settings_from(rendered.env(rendered.router))
    assert router.engine_api_key == real["ENGINE_API_KEY"]
    assert router.api_keys == json.loads(real["API_KEYS"])
    assert rendered.env(rendered.engine)["LORA_ROUTER_ENGINE_API_KEY"] == real["ENGINE_API_KEY"]
    assert (
        rendered.env(rendered.one("StatefulSet", "postgres"))["POSTGRES_PASSWORD"]
        == real["POSTGRES_PASSWORD"]
    )
