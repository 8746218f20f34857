"""Liveness, readiness, model descriptions and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.dependencies import RegistryDep
from service.schemas import HealthResponse, ModelInfo, ModelsResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthResponse)
async def health() -> HealthResponse:
    """Liveness: the process answers (models may still be loading)."""
    return HealthResponse()


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(registry: RegistryDep) -> JSONResponse:
    """Readiness: 200 once every configured model is loaded, 503 before or if one failed."""
    body = ReadyResponse(
        ready=registry.ready,
        loading=registry.loading,
        models=sorted(registry.models),
        errors=registry.errors,
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
                parameters=m.translator.model.num_parameters(),
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
