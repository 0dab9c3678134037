// DeepFinder training targets of one tomogram: shape masks (or spheres) of the placed templates.
process TARGETS {
    tag "${sample}_c${condition}"
    label 'process_low'
    container "${params.container_prefix}-deepfinder-train:${params.container_tag}"

    input:
    tuple val(sample), val(condition), path(tomogram), path(manifest)
    path structures

    output:
    // the folder: targets.mrc with targets.json (class names and radii, which train records in the model card)
    tuple val(sample), val(condition), path(tomogram), path("${tomo}", type: 'dir'), emit: pair
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    // several target classes: label k is the k-th target in every sample
    def target_args = params.targets.size() > 1 ? params.targets.collect { t -> "--target ${t.name}" }.join(' ') : ''
    tomo = String.format('%s_c%02d', sample, condition as int)
    """
    templearn-deepfinder-train targets ${manifest} --tomogram ${tomogram} --out ${tomo} --structures . ${target_args} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    tomo = String.format('%s_c%02d', sample, condition as int)
    """
    mkdir -p ${tomo} && touch ${tomo}/targets.mrc ${tomo}/targets.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
