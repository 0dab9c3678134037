// Precision, recall and F1 of Template Learning's picks, template matching as the baseline: the simulated
// test set together (out 'evaluate'), or one experimental tomogram on its own ('evaluate_exp/<name>').
process EVALUATE {
    tag "${out}"
    label 'process_single'
    container "${params.container_prefix}-pick-eval:${params.container_tag}"

    input:
    tuple val(out),
          path(picks,     stageAs: 'in/learning/p???/*'),
          path(truth,     stageAs: 'in/truth/t???/*'),
          path(baseline,  stageAs: 'in/matching/m???/*'),   // [] without template matching
          path(tomograms, stageAs: 'in/tomograms/v???/*'),  // paired with truth: the true/false/missed pictures
          path(masks,     stageAs: 'in/masks/k???/*'),      // [] or paired with truth
          val(template)                                     // the target's structure (picks-file truth), or null
    path structures                                         // staged structure files (a template given as a file)

    output:
    path "${out}/report.json", emit: report
    path "${out}/*",           emit: files
    path "versions.yml",         emit: versions

    script:
    def args = task.ext.args ?: ''
    def as_list = { x -> x instanceof List ? x : (x ? [x] : []) }
    def pick_args = as_list(picks).collect { p -> "--picks ${p}" }.join(' ')
    def truth_args = as_list(truth).collect { t -> "--truth ${t}" }.join(' ')
    def baseline_args = as_list(baseline).collect { b -> "--baseline ${b}" }.join(' ')
    def tomo_args = as_list(tomograms).collect { v -> "--tomogram ${v}" }.join(' ')
    def mask_args = as_list(masks).collect { m -> "--mask ${m}" }.join(' ')
    def tpl_arg = template ? "--template ${template}" : ''
    """
    templearn-pick-eval evaluate ${pick_args} ${truth_args} ${baseline_args} ${tomo_args} ${mask_args} --out ${out} ${tpl_arg} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${out} && echo '{}' > ${out}/report.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
