"""The Generator configurations tab of Templates: named parameter sets per model type, one
active for each."""

from __future__ import annotations

import json
from collections.abc import Sequence

import streamlit as st

from core import generators
from core.access import Actor, Role
from db.models import GeneratorConfig, ModelType
from pages.ui.actions import flash, read
from pages.ui.studio import run_checked
from pages.ui.text import plain

MODEL_LABELS = {ModelType.DALLE3: "DALL·E 3", ModelType.GPT4: "GPT-4", ModelType.CUSTOM: "custom"}


def _quoted(name: str) -> str:
    return f"“{plain(name)}”"


def generators_tab(actor: Actor) -> None:
    st.caption(
        "A configuration is the set of parameters the generator uses for one model type. "
        "Exactly one configuration per model type is active; admins switch which."
    )
    configs = read(actor, lambda s: generators.list_configs(session=s, actor=actor))
    _active_summary(configs)
    if not configs:
        st.info(
            "No generator configurations yet. Create one below; an admin then activates it.",
            icon=":material/add_circle:",
        )
    else:
        st.dataframe(
            [
                {
                    "model type": MODEL_LABELS[ModelType(c.model_type)],
                    "name": c.name,
                    "active": c.is_active,
                    "parameters": json.dumps(c.parameters, sort_keys=True),
                    "description": c.description,
                }
                for c in configs
            ],
            hide_index=True,
            width="stretch",
        )
        _edit(actor, configs)
    _create(actor, first=not configs)


def _active_summary(configs: Sequence[GeneratorConfig]) -> None:
    """Which configuration the generator uses for each model type."""
    active = {c.model_type: c.name for c in configs if c.is_active}
    for column, kind in zip(st.columns(len(ModelType)), ModelType, strict=True):
        name = active.get(kind.value)
        column.markdown(
            f"**{MODEL_LABELS[kind]}**  \n"
            + (f"{_quoted(name)} is active" if name else "none active")
        )


def _edit(actor: Actor, configs: Sequence[GeneratorConfig]) -> None:
    by_id = {c.id: c for c in configs}
    chosen_id = st.selectbox(
        "Open a configuration",
        list(by_id),
        format_func=lambda i: f"{by_id[i].name} ({MODEL_LABELS[ModelType(by_id[i].model_type)]})",
        key="generator_pick",
    )
    config = by_id[chosen_id]
    assert config.id is not None
    with st.form(f"generator_{config.id}_{config.version}"):
        name = st.text_input("Name", value=config.name, max_chars=100)
        parameters = st.text_area(
            "Parameters (JSON)",
            value=json.dumps(config.parameters, indent=2, sort_keys=True),
            height=160,
            help=_allowed(ModelType(config.model_type)),
        )
        description = st.text_input("Description", value=config.description, max_chars=500)
        saved = st.form_submit_button("Save configuration", type="primary")
    if saved:
        _update(actor, config, name, parameters, description)
    _switch(actor, config)
    _delete(actor, config)


def _allowed(kind: ModelType) -> str:
    rules = generators.PARAMETERS[kind]
    if kind is ModelType.CUSTOM:
        return "Any lowercase keys with text, numbers, true/false or short lists; endpoint: a URL."
    return f"{MODEL_LABELS[kind]} takes: {', '.join(rules)}."


def _update(
    actor: Actor, config: GeneratorConfig, name: str, parameters: str, description: str
) -> None:
    assert config.id is not None
    config_id = config.id
    outcome = run_checked(
        actor,
        lambda s: generators.update_config(
            session=s,
            actor=actor,
            config_id=config_id,
            expected_version=config.version,
            name=name,
            parameters=parameters,
            description=description,
        ),
    )
    if outcome.ok:
        flash(f"Saved the configuration {_quoted(name)}.")


def _switch(actor: Actor, config: GeneratorConfig) -> None:
    assert config.id is not None
    config_id = config.id
    kind = MODEL_LABELS[ModelType(config.model_type)]
    if actor.role is not Role.ADMIN:
        st.caption(
            f"Only an admin activates a configuration: it changes what the generator uses "
            f"for every {kind} design."
        )
        return
    if not config.is_active:
        if st.button(f"Activate for {kind}", key=f"activate_{config_id}", type="primary"):
            outcome = run_checked(
                actor,
                lambda s: generators.activate_config(session=s, actor=actor, config_id=config_id),
            )
            if outcome.ok:
                flash(f"{_quoted(config.name)} is now the active {kind} configuration.")
    elif st.button(f"Deactivate (leave {kind} without one)", key=f"deactivate_{config_id}"):
        outcome = run_checked(
            actor,
            lambda s: generators.deactivate_config(session=s, actor=actor, config_id=config_id),
        )
        if outcome.ok:
            flash(f"No {kind} configuration is active now.")


def _delete(actor: Actor, config: GeneratorConfig) -> None:
    assert config.id is not None
    config_id = config.id
    if config.is_active:
        return
    confirm = st.checkbox(
        f"Yes, delete {_quoted(config.name)}", key=f"confirm_delete_generator_{config_id}"
    )
    if st.button("Delete configuration", key=f"delete_generator_{config_id}", disabled=not confirm):
        outcome = run_checked(
            actor,
            lambda s: generators.delete_config(
                session=s, actor=actor, config_id=config_id, expected_version=config.version
            ),
        )
        if outcome.ok:
            flash(f"Deleted the configuration {_quoted(config.name)}.")


def _create(actor: Actor, *, first: bool) -> None:
    with st.expander("Create a configuration", icon=":material/add:", expanded=first):
        kind = (
            st.selectbox(
                "Model type",
                list(ModelType),
                format_func=lambda k: MODEL_LABELS[k],
                key="new_generator_type",
            )
            or ModelType.DALLE3
        )
        with st.form(f"new_generator_{kind.value}"):
            name = st.text_input(
                "Name",
                max_chars=100,
                placeholder="Square, natural light",
                key=f"new_generator_name_{kind.value}",
            )
            parameters = st.text_area(
                "Parameters (JSON)",
                value=json.dumps(generators.DEFAULT_PARAMETERS[kind], indent=2),
                height=160,
                help=_allowed(kind),
                key=f"new_generator_parameters_{kind.value}",
            )
            description = st.text_input(
                "Description", max_chars=500, key=f"new_generator_description_{kind.value}"
            )
            created = st.form_submit_button("Create configuration", type="primary")
    if created:
        outcome = run_checked(
            actor,
            lambda s: generators.create_config(
                session=s,
                actor=actor,
                name=name,
                kind=kind,
                parameters=parameters,
                description=description,
            ),
        )
        if outcome.ok:
            flash(
                f"Created the {MODEL_LABELS[kind]} configuration {_quoted(name)} (inactive"
                + (
                    "; activate it above)."
                    if actor.role is Role.ADMIN
                    else "; an admin activates it)."
                )
            )
