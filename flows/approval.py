"""Human approval of a promotion (gate.require_approval) on Prefect: the pause with its
form (`pause_flow_run` + a RunInput), the approval page as an artifact, and `genloop
approve`'s resume. The decision logic is components/approval.py."""
from __future__ import annotations

import os
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from components import approval
from components.artifacts import artifact_key
from components.errors import GenloopError
from components.results import Audited, Evaluated, Gated
from components.runs import RunContext

APPROVAL_POLL_SECONDS = 2          # how often the paused flow looks for a decision


class ApprovalInput(RunInput):
    """The decision `genloop approve` sends, or the Prefect UI's Resume form asks for."""
    approve: bool = Field(False, description="Ticked: promote this model. Unticked: reject it.")
    reviewer: str = Field(..., min_length=1, description="Who decides (stored with the model).")
    comment: str = Field("", description="Why (stored with the model).")


def require_server(needed_by: str) -> str:
    """The configured Prefect API URL, or a GenloopError saying to start a server.

    Without PREFECT_API_URL, Prefect 3.8.8 runs a flow on an ephemeral API: a uvicorn
    subprocess on a random 127.0.0.1 port, UI disabled, living only as long as the process
    that started it, over the SQLite file in PREFECT_HOME. Another process with the same
    PREFECT_HOME could resume a paused run through its own ephemeral API over that file,
    but the Prefect UI form (one of the two ways to approve) is not served, an approver
    with another PREFECT_HOME or on another machine cannot reach it, and two API servers
    would share one SQLite file. So approval asks for a real `prefect server`."""
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if url:
        return url
    if needed_by == "genloop approve":
        raise GenloopError("genloop approve needs the Prefect server the paused run uses: `export "
                           "PREFECT_API_URL=http://127.0.0.1:4200/api` (where `prefect server start` listens) "
                           "and retry.")
    raise GenloopError(f"{needed_by} needs a Prefect server that outlives this process: run "
                       f"`prefect server start`, then `export PREFECT_API_URL=http://127.0.0.1:4200/api` "
                       f"and retry.")


def await_approval(ctx: RunContext, evaluated: Evaluated, audited: Audited, gated: Gated) -> Gated:
    """Publish the approval page (a markdown artifact), pause the flow run until a person
    decides or gate.approval_timeout passes, and return the final decision (recorded in the
    run dir: approval.json, gate.json)."""
    logger = get_run_logger()
    timeout = ctx.config.gate.approval_timeout
    flow_run_id = str(FlowRunContext.get().flow_run.id)
    key = artifact_key("approval", ctx.config.name)
    create_markdown_artifact(
        approval.approval_markdown(model_name=ctx.config.name, run_id=ctx.run_id, flow_run_id=flow_run_id,
                                   evaluated=evaluated, gated=gated, audit_passed=audited.passed,
                                   audit_reasons=audited.reasons, timeout=timeout),
        key=key, description=f"approve or reject genloop run {ctx.run_id}")
    logger.warning(f"waiting up to {timeout} s for a person to approve {ctx.config.name} (gate: {gated.reason}). "
                   f"Run `genloop approve {flow_run_id}` (add --reject to reject, --comment TEXT), or Resume "
                   f"this flow run in the Prefect UI; the metrics and samples are in the artifact {key!r}.")
    form = ApprovalInput.with_initial_data(
        description=f"Approve or reject {ctx.config.name} from genloop run {ctx.run_id}. The gate says: "
                    f"{gated.reason}. Metrics and samples: artifact `{key}`.")
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=APPROVAL_POLL_SECONDS,
                                key=approval.PAUSE_KEY)
        decision = approval.Approval.decided(answer.approve, answer.reviewer, answer.comment)
    except FlowPauseTimeout:
        # Prefect 3.8.8 raises FlowPauseTimeout when nobody resumed the run in time. The flow
        # goes on (package does nothing, report and summary say why). The server may refuse
        # the transitions of a run whose pause expired and end it Failed ("... never
        # resumed"); we have seen both Failed and Completed. Either way nothing is promoted.
        decision = approval.Approval.no_decision(timeout)
    final = approval.record(ctx.run_dir, approval.apply(gated, decision))
    (logger.info if final.promote else logger.warning)(f"approval: {final.reason}")
    return final


def resume_with_decision(flow_run_id: str, *, approve: bool, reviewer: str, comment: str) -> str:
    """Resume a retraining run paused for approval with the decision; its name on success.
    Anything else (malformed or unknown id, not paused, timed out, no server) is a
    GenloopError with one line saying what is wrong."""
    import httpx
    from prefect import get_client
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import ObjectNotFound

    url = require_server("genloop approve")
    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        raise GenloopError(f"{flow_run_id!r} is not a flow run id: pass the id that `genloop run` printed "
                           f"(`genloop approve <flow-run-id>`).") from None
    if not reviewer.strip():
        raise GenloopError("--reviewer must name who decides (it is stored with the model).")
    try:
        with get_client(sync_client=True) as client:
            try:
                run = client.read_flow_run(run_id)
            except ObjectNotFound:
                raise GenloopError(f"no flow run {flow_run_id} on the Prefect server at {url}.") from None
            state = run.state
            if state is None or not state.is_paused():
                raise GenloopError(f"flow run {flow_run_id} ({run.name}) is {state.name if state else 'without a state'}, "
                                   f"not paused waiting for approval: nothing to approve.")
            if state.state_details.pause_key != approval.PAUSE_KEY or not state.state_details.run_input_keyset:
                raise GenloopError(f"flow run {flow_run_id} ({run.name}) is paused, but not waiting for a genloop "
                                   f"approval: resume it in the Prefect UI.")
            response = client.resume_flow_run(run_id, run_input={"approve": approve, "reviewer": reviewer.strip(),
                                                                  "comment": comment.strip()})
    except httpx.HTTPStatusError as exc:
        raise GenloopError(f"the Prefect server at {url} answered HTTP {exc.response.status_code} for flow run "
                           f"{flow_run_id}: {exc.response.text[:200]}") from None
    except httpx.HTTPError as exc:
        raise GenloopError(f"cannot reach the Prefect server at {url} ({type(exc).__name__}): is "
                           f"`prefect server start` running?") from None
    if response.status == SetStateStatus.ACCEPT:
        return run.name
    if response.state is not None and response.state.is_failed():
        raise GenloopError(f"flow run {flow_run_id} ({run.name}) waited longer than its gate.approval_timeout: "
                           f"it can no longer be resumed, and its model is not promoted.")
    reason = response.details.reason if response.details and getattr(response.details, "reason", None) else ""
    raise GenloopError(f"Prefect did not resume flow run {flow_run_id} ({run.name}): "
                       f"{reason or response.status.value}.")
