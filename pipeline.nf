#!/usr/bin/env nextflow
/*
 * templearn: Template Learning (Harastani et al. 2024) as a Nextflow DSL2 pipeline.
 *
 * The same stage graph as the embedded orchestrator (`templearn-run`, orchestrator/graph.py),
 * calling the same stage commands with the same options; the same YAML run config is the
 * params file:
 *
 *   nextflow run pipeline.nf -params-file examples/quickstart.yaml --base_dir examples --outdir results -profile docker
 *   nextflow run pipeline.nf -params-file examples/ribosome.yaml --base_dir examples -profile slurm,singularity,gpu -resume -with-tower
 *   nextflow run pipeline.nf -profile test -stub-run          # dry run of the graph
 *
 * Data flow: GRID (48 conditions) and NMA (variants per target) -> TETRIS (one crowded sample per
 * seed) -> SIMULATE (every sample x every chosen grid condition, in parallel) -> RECONSTRUCT ->
 * TARGETS -> TRAIN (train/val samples) -> PICK and MATCH (held-out samples) -> EVALUATE.
 * Published layout = the orchestrator's run folder: <outdir>/{grid,nma,tetris,simulate,...}.
 */
nextflow.enable.dsl = 2

include { GRID        } from './modules/local/grid'
include { NMA         } from './modules/local/nma'
include { TETRIS      } from './modules/local/tetris'
include { SIMULATE    } from './modules/local/simulate'
include { RECONSTRUCT } from './modules/local/reconstruct'
include { TARGETS     } from './modules/local/targets'
include { TRAIN       } from './modules/local/train'
include { PICK        } from './modules/local/pick'
include { PICK as PICK_FINETUNED } from './modules/local/pick'
include { FINETUNE    } from './modules/local/finetune'
include { MATCH       } from './modules/local/match'
include { EVALUATE    } from './modules/local/evaluate'
include { EVALUATE as EVALUATE_EXP } from './modules/local/evaluate'

// A value of the run config (the params file), with the orchestrator's default.
def cfg(String section, String key, fallback) {
    def s = params[section]
    return (s instanceof Map && s.containsKey(key) && s[key] != null) ? s[key] : fallback
}

// A path of the run config: relative paths are relative to --base_dir (the config's folder, as
// templearn-run takes them; default the launch folder).
def local_file(s) {
    def p = file(s.toString())
    return (p.exists() || s.toString().startsWith('/')) ? p : file("${params.base_dir ?: launchDir}/${s}")
}
// A structure spec: a local file is staged and named by its file name; a PDB ID stays as it is.
def is_file_spec(s) { return local_file(s).exists() }
def spec_name(s)    { return is_file_spec(s) ? local_file(s).name : s.toString().toLowerCase() }

workflow {
    if (!params.targets) { error "give the run config as params file: -params-file examples/quickstart.yaml" }
    def targets     = params.targets.collect { t -> [t.name, t.templates.collect { spec_name(it) }] }
    def distractors = (params.distractors ?: []).collect { spec_name(it) }
    def all_specs   = params.targets.collectMany { it.templates } + (params.distractors ?: [])
    def struct_files = all_specs.findAll { is_file_spec(it) }.collect { local_file(it) }
    if (params.distractor_list) { struct_files << local_file(params.distractor_list) }
    ch_structures = Channel.value(struct_files)

    def n_samples  = cfg('tetris', 'n_samples', 4) as int
    def n_val      = cfg('split', 'val', 1) as int
    def n_test     = cfg('split', 'test', 1) as int
    def conds_cfg  = cfg('simulation', 'conditions', 'all')
    def pairing    = cfg('simulation', 'pairing', 'all')
    def samples    = (0..<n_samples).collect { i -> String.format('sample_%03d', i) }
    def test_set   = samples.takeRight(n_test)
    def val_set    = samples.dropRight(n_test).takeRight(n_val)
    ch_versions    = Channel.empty()

    // grid: the 48 randomization conditions
    def grid_cfg = cfg('simulation', 'grid_config', null)
    GRID(grid_cfg ? local_file(grid_cfg) : [])
    ch_versions = ch_versions.mix(GRID.out.versions)

    // nma: variants of each target's templates
    if (cfg('nma', 'enabled', true)) {
        NMA(Channel.fromList(targets), ch_structures)
        ch_nma = NMA.out.variants.map { name, dir -> dir }.collect()
        ch_versions = ch_versions.mix(NMA.out.versions)
    } else {
        ch_nma = Channel.value([])
    }

    // tetris: one crowded sample per seed
    ch_samples = Channel.fromList(samples.withIndex().collect { s, i -> [s, (params.seed as int) + i] })
    TETRIS(ch_samples, targets, distractors, ch_nma, ch_structures)
    ch_versions = ch_versions.mix(TETRIS.out.versions)

    // simulate: the grid fanned out, every (sample, condition) a parallel task. 'all' = every
    // condition GRID wrote (48 for one optical domain, 96 for both), read from grid.json.
    ch_conditions = conds_cfg == 'all' ?
        GRID.out.grid.map { f -> new groovy.json.JsonSlurper().parse(f).conditions.collect { it.index as int } } :
        Channel.value(conds_cfg.collect { it as int })
    ch_sim_in = TETRIS.out.manifest
        .combine(ch_conditions.map { ks -> [ks] })      // [sample, manifest, [conditions]]
        .flatMap { s, m, ks ->
            def i = samples.indexOf(s)
            def chosen = pairing == 'all' ? ks : [ks[i % ks.size()]]
            chosen.collect { k -> [s, m, k, (params.seed as int) + 1000 * (i + 1) + k] }
        }
    // the manifest names structure files and NMA variants: stage them all (--structures .)
    ch_sim_structs = ch_nma.map { dirs -> dirs + struct_files }
    SIMULATE(ch_sim_in, GRID.out.grid, ch_sim_structs)
    RECONSTRUCT(SIMULATE.out.tilt_series)
    ch_versions = ch_versions.mix(SIMULATE.out.versions, RECONSTRUCT.out.versions)

    // training.enabled: false makes a simulation-only run (it ends with the tomograms)
    if (cfg('training', 'enabled', true)) {
        // targets for training and validation samples (test samples are held out)
        ch_tomos = RECONSTRUCT.out.tomogram
        // randomized (simulation.randomize, or `randomize:` in the grid config): the targets come
        // from SIMULATE's sample.json (the molecules in its slab), else from the TETRIS sample
        def grid_doc = grid_cfg ? (new org.yaml.snakeyaml.Yaml().load(local_file(grid_cfg).text) ?: [:]) : [:]
        def randomized = cfg('simulation', 'randomize', false) || !(grid_doc.randomize in [null, false])
        ch_for_targets = randomized ?
            ch_tomos.filter { s, k, t -> !(s in test_set) }.join(SIMULATE.out.sample, by: [0, 1]) :
            ch_tomos.filter { s, k, t -> !(s in test_set) }.combine(TETRIS.out.manifest, by: 0)
        TARGETS(ch_for_targets, ch_sim_structs)
        ch_versions = ch_versions.mix(TARGETS.out.versions)

        // train: pairs in a fixed order (sample, condition) so the command line is reproducible
        ch_pairs = TARGETS.out.pair.toSortedList { a, b -> a[0] <=> b[0] ?: a[1] <=> b[1] }
        ch_train = ch_pairs.map { l -> l.findAll { !(it[0] in val_set) } }
        ch_val   = ch_pairs.map { l -> l.findAll { it[0] in val_set } }
        TRAIN(
            ch_train.map { l -> l.collect { it[2] } }, ch_train.map { l -> l.collect { it[3] } },
            ch_val.map { l -> l.collect { it[2] } },   ch_val.map { l -> l.collect { it[3] } }
        )
        ch_versions = ch_versions.mix(TRAIN.out.versions)

        // pick and template-match the held-out tomograms, and the experimental ones (exp_<name>, with their masks)
        def experimental = params.experimental ?: []
        def mask_of = { e -> e.mask ? local_file(e.mask) : [] }
        ch_sim_test = ch_tomos
            .filter { s, k, t -> s in test_set }
            .map { s, k, t -> [String.format('%s_c%02d', s, k as int), t, [], 'dark'] }
        ch_exp = Channel.fromList(experimental.collect { e -> ["exp_${e.name}".toString(), local_file(e.tomogram), mask_of(e), e.contrast ?: 'dark'] })
        ch_test = ch_sim_test.mix(ch_exp)
        PICK(ch_test, TRAIN.out.model)
        ch_versions = ch_versions.mix(PICK.out.versions)
        def is_exp = { String tomo -> tomo.startsWith('exp_') }

        // fine-tuning on annotated experimental tomograms; the experimental ones are then picked again with it
        def annotated = cfg('finetune', 'tomograms', [])
        ch_exp_picks = PICK.out.picks.filter { is_exp(it[0]) }
        if (annotated) {
            FINETUNE(TRAIN.out.model, annotated.collect { local_file(it.tomogram) }, annotated.collect { local_file(it.picks) })
            PICK_FINETUNED(ch_exp.map { t, f, m, c -> ["${t}_finetuned".toString(), f, m, c] }, FINETUNE.out.model)
            ch_versions = ch_versions.mix(FINETUNE.out.versions, PICK_FINETUNED.out.versions)
            ch_exp_picks = ch_exp_picks.mix(PICK_FINETUNED.out.picks)
        }

        // the simulated test set is scored together against its samples' manifests
        def tomo_sample = { String tomo -> tomo.replaceAll(/_c\d+$/, '') }
        def with_truth = { ch -> ch.filter { !is_exp(it[0]) }.map { tomo, p -> [tomo_sample(tomo), tomo, p] }
                                   .combine(TETRIS.out.manifest, by: 0)
                                   .toSortedList { a, b -> a[1] <=> b[1] } }   // [[sample, tomo, picks, truth], ...]
        ch_learning = with_truth(PICK.out.picks)
        // each picked tomogram in the same order, for evaluate's true/false/missed pictures
        ch_eval_tomos = ch_learning.flatMap { it }.map { s, t, p, tr -> [t, s] }
            .combine(ch_sim_test.map { t, f, m, c -> [t, f] }, by: 0)
            .toSortedList { a, b -> a[0] <=> b[0] }.map { l -> l.collect { it[2] } }
        ch_exp_baseline = Channel.empty()
        if (cfg('template_matching', 'enabled', true)) {
            def template = spec_name(cfg('template_matching', 'template', params.targets[0].templates[0]))
            MATCH(ch_test, template, ch_structures)
            ch_versions = ch_versions.mix(MATCH.out.versions)
            ch_baseline = with_truth(MATCH.out.picks).map { l -> l.collect { it[2] } }
            ch_exp_baseline = MATCH.out.picks.filter { is_exp(it[0]) }
        } else {
            ch_baseline = Channel.value([])
        }
        if (test_set) {
            ch_eval = ch_learning.map { l -> [l.collect { it[2] }, l.collect { it[3] }] }   // [picks, truths]
                .combine(ch_baseline.map { b -> [b] })
                .combine(ch_eval_tomos.map { v -> [v] })
                .map { p, tr, b, v -> ['evaluate', p, tr, b, v, [], null] }
            EVALUATE(ch_eval, ch_structures)
            ch_versions = ch_versions.mix(EVALUATE.out.versions)
        }

        // each annotated experimental tomogram is scored on its own, for each model (evaluate_exp/<name>[_finetuned])
        def exp_truth = experimental.findAll { it.truth }
            .collect { e -> ["exp_${e.name}".toString(), local_file(e.truth), local_file(e.tomogram), mask_of(e)] }
        if (exp_truth) {
            // annotations carry no masses: the matching distance is the target's radius (unless evaluation.distance)
            def template_target = cfg('evaluation', 'distance', null) == null ? spec_name(params.targets[0].templates[0]) : null
            def base_of = { String t -> t.replaceAll(/_finetuned$/, '') }
            ch_exp_in = ch_exp_picks.map { t, p -> [base_of(t), t, p] }
                .combine(Channel.fromList(exp_truth), by: 0)                               // [tomo, name, picks, truth, tomogram, mask]
            ch_exp_in = cfg('template_matching', 'enabled', true) ?
                ch_exp_in.combine(ch_exp_baseline, by: 0) : ch_exp_in.map { it + [[]] }   // + baseline picks
            EVALUATE_EXP(ch_exp_in.map { tomo, name, p, tr, v, m, b ->
                ["evaluate_exp/${name.replaceFirst(/^exp_/, '')}".toString(), p, tr, b, v, m, template_target] }, ch_structures)
            ch_versions = ch_versions.mix(EVALUATE_EXP.out.versions)
        }
    }

    ch_versions.unique().collectFile(name: 'software_versions.yml', storeDir: "${params.outdir}/pipeline_info")
}

workflow.onComplete {
    log.info "templearn: ${workflow.success ? 'done' : 'failed'}; results in ${params.outdir}" +
             " (report.md: templearn-run <config> --run-dir ${params.outdir} --report-only)"
}
