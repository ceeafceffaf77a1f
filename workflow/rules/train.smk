# Training and evaluation of iteration k of one run (game, variant, seed).
#
# Declared outputs are written atomically at the end of a stage; the mid-stage checkpoint
# (`*.partial.pt`) is undeclared, so Snakemake never deletes it and a rerun resumes from it.
#
# Every value in a shell command is quoted (`:q`). Optional flags are lists of arguments, so that
# `:q` quotes each one (an empty list adds nothing).
#
# Interleaved training (the default, the paper's loop) is one rule per iteration, train_agent
# (agent.pt), or with loop.online train_agent for iteration 0 and train_online after it. Staged
# training (`interleaved: false`) is two: train_world_model (world_model.pt), then
# train_actor_critic (actor_critic.pt). Only the rules of the configured path exist.


if CFG.interleaved:

    rule train_agent:
        """Iteration k's agent on the replay: world model, actor and critic on every batch (the paper's loop)."""
        input:
            unpack(lambda w: W.start_from(w.game, w.seed, w.iteration)),
            replay=lambda w: W.replay(w.game, w.seed, w.iteration),
            shared=lambda w: W.shared_built(w.game),
            held_out=lambda w: W.held_out(w.game),  # the actor gate's (train.actor_gate), when it is on
        output:
            checkpoint=L.agent_checkpoint("{game}", "{variant}", "{seed}", "{iteration}"),
            videos=open_loop_videos(),
        wildcard_constraints:
            iteration=W.staged_iterations(),
        params:
            config=CONFIG_SNAPSHOT,
            start=_start_flags,
            shared=_shared_flags,
            updates=lambda w: W.updates(w.iteration),
            updates_before=lambda w: W.updates_before(w.iteration),
            frames=lambda w: W.frames(w.iteration),
            mode=lambda w: W.train_mode(w.iteration),
        resources:
            gpu=1,
        log:
            L.log("train_agent", "{game}", "{variant}", "seed{seed}", "iter{iteration}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline train-agent --config {params.config:q} --game {wildcards.game:q} "
            "--seed {wildcards.seed:q} --iteration {wildcards.iteration:q} --updates {params.updates:q} "
            "--updates-before {params.updates_before:q} --frames {params.frames:q} {params.mode:q} {params.start:q} "
            "{params.shared:q} --out {output.checkpoint:q} --videos {output.videos:q} {input.replay:q} "
            "> {log:q} 2>&1"

else:

    rule train_world_model:
        """Staged training, first stage: iteration k's world model alone on the replay."""
        input:
            unpack(lambda w: W.start_from(w.game, w.seed, w.iteration)),
            replay=lambda w: W.replay(w.game, w.seed, w.iteration),
            shared=lambda w: W.shared_built(w.game),
            held_out=lambda w: W.held_out(w.game),  # the actor gate's (train.actor_gate), when it is on
        output:
            checkpoint=L.world_model("{game}", "{variant}", "{seed}", "{iteration}"),
            videos=open_loop_videos(),
        wildcard_constraints:
            iteration=W.staged_iterations(),
        params:
            config=CONFIG_SNAPSHOT,
            start=_start_flags,
            shared=_shared_flags,
            updates=lambda w: W.updates(w.iteration),
            updates_before=lambda w: W.updates_before(w.iteration),
            frames=lambda w: W.frames(w.iteration),
        resources:
            gpu=1,
        log:
            L.log("train_world_model", "{game}", "{variant}", "seed{seed}", "iter{iteration}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline train-world-model --config {params.config:q} --game {wildcards.game:q} "
            "--seed {wildcards.seed:q} --iteration {wildcards.iteration:q} --updates {params.updates:q} "
            "--updates-before {params.updates_before:q} --frames {params.frames:q} {params.start:q} "
            "{params.shared:q} --out {output.checkpoint:q} --videos {output.videos:q} {input.replay:q} "
            "> {log:q} 2>&1"

    rule train_actor_critic:
        """Staged training, second stage: actor and critic of iteration k, in imagination on its world model."""
        input:
            world_model=L.world_model("{game}", "{variant}", "{seed}", "{iteration}"),
            replay=lambda w: W.replay(w.game, w.seed, w.iteration),
            shared=lambda w: W.shared_built(w.game),
            held_out=lambda w: W.held_out(w.game),
        output:
            checkpoint=L.actor_critic("{game}", "{variant}", "{seed}", "{iteration}"),
        params:
            config=CONFIG_SNAPSHOT,
            shared=_shared_flags,
            updates=lambda w: W.updates(w.iteration),
            updates_before=lambda w: W.updates_before(w.iteration),
            frames=lambda w: W.frames(w.iteration),
        resources:
            gpu=1,
        log:
            L.log("train_actor_critic", "{game}", "{variant}", "seed{seed}", "iter{iteration}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline train-actor-critic --config {params.config:q} --game {wildcards.game:q} "
            "--seed {wildcards.seed:q} --iteration {wildcards.iteration:q} --updates {params.updates:q} "
            "--updates-before {params.updates_before:q} --frames {params.frames:q} --world-model {input.world_model:q} "
            "{params.shared:q} --out {output.checkpoint:q} {input.replay:q} > {log:q} 2>&1"


if CFG.loop.online:

    rule train_online:
        """Iteration k >= 1 with loop.online: its collectors and the learner run at the same time."""
        input:
            previous=lambda w: W.agent(w.game, w.seed, int(w.iteration) - 1),
            replay=lambda w: W.replay(w.game, w.seed, w.iteration, own=False),
            shared=lambda w: W.shared_built(w.game),
            held_out=lambda w: W.held_out(w.game),
        output:
            checkpoint=L.agent_checkpoint("{game}", "{variant}", "{seed}", "{iteration}"),
            markers=[L.shard_marker("{game}", "{variant}", "{seed}", "{iteration}", str(j)) for j in range(CFG.collectors)],
            videos=open_loop_videos(),
        wildcard_constraints:
            iteration=r"(?!0000)\d{4}",
        params:
            config=CONFIG_SNAPSHOT,
            shared=_shared_flags,
            markers=lambda w, output: [argument for marker in output.markers for argument in ("--marker", marker)],
            updates=lambda w: W.updates(w.iteration),
            updates_before=lambda w: W.updates_before(w.iteration),
            frames=lambda w: W.frames(w.iteration),
        threads: CFG.collectors + 1
        resources:
            gpu=1,
        log:
            L.log("train_online", "{game}", "{variant}", "seed{seed}", "iter{iteration}"),
        conda:
            CONDA_ENV
        shell:
            "dreamer-pipeline train-online --config {params.config:q} --game {wildcards.game:q} "
            "--seed {wildcards.seed:q} --iteration {wildcards.iteration:q} --updates {params.updates:q} "
            "--updates-before {params.updates_before:q} --frames {params.frames:q} --resume-from {input.previous:q} "
            "{params.shared:q} {params.markers:q} --out {output.checkpoint:q} --videos {output.videos:q} "
            "{input.replay:q} > {log:q} 2>&1"



rule evaluate:
    """Greedy episodes with iteration k's agent, sticky actions on (and one recorded as MP4)."""
    input:
        agent=lambda w: W.agent(w.game, w.seed, w.iteration),
    output:
        result=L.eval_json("{game}", "{variant}", "{seed}", "{iteration}"),
        **EVAL_VIDEO,
    params:
        config=CONFIG_SNAPSHOT,
        frames=lambda w: W.frames(w.iteration),
        env_seed=lambda w: W.eval_seed(w.seed, w.iteration),
        episodes=CFG.evaluate.episodes,
        video=lambda w, output: ["--video", output.video] if CFG.evaluate.video else [],  # `:q` quotes each
        device=CFG.evaluate.device,
    threads: min(CFG.evaluate.envs, CFG.evaluate.episodes)
    log:
        L.log("evaluate", "{game}", "{variant}", "seed{seed}", "iter{iteration}"),
    conda:
        CONDA_ENV
    shell:
        "dreamer-pipeline evaluate --config {params.config:q} --game {wildcards.game:q} "
        "--variant {wildcards.variant:q} --seed {wildcards.seed:q} --iteration {wildcards.iteration:q} "
        "--frames {params.frames:q} --env-seed {params.env_seed:q} --episodes {params.episodes:q} "
        "--agent {input.agent:q} --device {params.device:q} --threads {threads:q} --out {output.result:q} "
        "{params.video:q} > {log:q} 2>&1"
