// One crowded sample: templates (and their NMA variants) among distractors, packed by Tetris.
process TETRIS {
    tag "${sample}"
    label 'process_single'
    container "${params.container_prefix}-tetris:${params.container_tag}"

    input:
    tuple val(sample), val(seed)
    val targets                     // [[name, [specs]], ...]
    val distractors                 // [specs]
    path nma_dirs                   // one folder per target with variants.csv ([] without NMA)
    path structures                 // structure files named in specs

    output:
    tuple val(sample), path("${sample}/sample.json"), emit: manifest
    path "${sample}/*",                               emit: files
    path "versions.yml",                              emit: versions

    script:
    def args = task.ext.args ?: ''
    // one target class: --target SPEC ... --target-name NAME; several: --target NAME=SPEC
    def target_args = targets.size() == 1 ?
        (targets[0][1].collect { s -> "--target ${s}" } + ["--target-name ${targets[0][0]}"]).join(' ') :
        targets.collect { t -> t[1].collect { s -> "--target ${t[0]}=${s}" }.join(' ') }.join(' ')
    def variant_args = (nma_dirs instanceof List ? nma_dirs : [nma_dirs]).findAll { it }.collect { d -> "--variants ${d}/variants.csv" }.join(' ')
    def distractor_args = distractors.collect { s -> "--distractor ${s}" }.join(' ')
    def list_arg = params.distractor_list ? "--distractor-list ${file(params.distractor_list.toString()).name}" : ''
    """
    templearn-tetris pack ${target_args} ${variant_args} ${distractor_args} ${list_arg} \\
        --out ${sample} --name ${sample} --seed ${seed} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${sample} && echo '{}' > ${sample}/sample.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
