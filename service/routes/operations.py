"""Liveness, readiness, model descriptions and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.dependencies import RegistryDep
from service.schemas import HealthResponse, ModelInfo, ModelsResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(registry: RegistryDep) -> JSONResponse:
    """Liveness: the process answers and no model's decoding worker is stuck (models
    may still be loading). A stuck worker makes this 503, so that the pod is restarted."""
    stalled = registry.stalled()
    body = HealthResponse(status="stalled" if stalled else "ok", stalled=stalled)
    return JSONResponse(body.model_dump(), status_code=503 if stalled else 200)


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(request: Request, registry: RegistryDep) -> JSONResponse:
    """Readiness: 200 once the models are loaded (all of them, or any with
    ``ready_when: any``); 503 before, and from the moment shutdown begins."""
    draining: bool = request.app.state.draining
    body = ReadyResponse(
        ready=registry.ready and not draining,
        loading=registry.loading,
        draining=draining,
        models=registry.states(),
    )
    headers = {"Retry-After": "5"} if registry.loading else None
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503, headers=headers)


@router.get("/v1/models", response_model=ModelsResponse)
async def models(registry: RegistryDep) -> ModelsResponse:
    """The loaded models: language pair, size, device, validation scores from training."""
    return ModelsResponse(
        models=[
            ModelInfo(
                name=m.name,
                source=m.source,
                target=m.target,
                parameters=m.translator.loaded.model.num_parameters(),
                device=m.device,
                step=m.translator.loaded.step,
                checkpoint=m.path.name,
                scores={
                    k: v
                    for k, v in m.translator.loaded.scores.items()
                    if isinstance(v, float | int | str)
                },
            )
            for m in registry.models.values()
        ]
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
